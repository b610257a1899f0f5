//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit;

/// Just-in-time shell access to EC2: ask for it, approve it, follow it.
#[derive(Debug, Parser)]
#[command(name = "jitgate", version, after_help = exit::HELP)]
pub struct Cli {
    /// The jitgate server (else the one `jitgate login` saved).
    #[arg(long, global = true, env = "JITGATE_SERVER")]
    pub server: Option<String>,
    /// Print data as JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where the config and credentials live (default: ~/.config/jitgate).
    #[arg(long, global = true, env = "JITGATE_CONFIG_DIR", hide = true)]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in through the server's web sign-in and keep an API token for this machine.
    Login {
        /// Print the sign-in URL instead of opening a browser; paste the code shown at the
        /// end if this machine's browser cannot reach the loopback address.
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget this machine's token (and revoke it on the server).
    Logout,
    /// The profiles you may request or approve.
    Profiles,
    /// Your grants (with time left), your pending requests and what waits for your approval.
    Status,
    /// The instances you can reach, under which profile, and your grants on them.
    Targets {
        /// An instance id, or part of a Name tag; all of them when left out.
        query: Option<String>,
    },
    /// Ask for access under a profile.
    Request {
        /// The profile (see `jitgate profiles`).
        profile: String,
        /// The OS user to be on the instances.
        #[arg(long = "as", value_name = "OSUSER")]
        os_user: String,
        /// How long, like 30m, 2h or 1h30m.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why you need it (shown to the approvers).
        #[arg(long)]
        reason: String,
        /// A ticket or incident id.
        #[arg(long)]
        ticket: Option<String>,
        /// The AWS account (needed when the profile covers several).
        #[arg(long)]
        account: Option<String>,
        /// Wait until it is active (exit 0) or will not be (exit 5).
        #[arg(long)]
        wait: bool,
    },
    /// Approve a request (or its pending extension).
    Approve {
        /// The request id.
        id: String,
    },
    /// Deny a request (or its pending extension).
    Deny {
        /// The request id.
        id: String,
        /// Why (shown to the requester).
        #[arg(long)]
        reason: String,
    },
    /// Ask for more time on an active grant.
    Extend {
        /// The request id.
        id: String,
        /// How much more, like 30m or 1h.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// End a grant now (or withdraw a request not active yet).
    Revoke {
        /// The request id.
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Open a shell on an instance (by Name tag or id) through your grant, requesting one
    /// if none reaches it. Needs AWS's session-manager-plugin on PATH.
    Ssh {
        /// An instance's Name tag (or part of it), or its id.
        target: String,
        /// The OS user to be (picks among your grants; needed to request one when the
        /// profile allows several).
        #[arg(long = "as", value_name = "OSUSER")]
        os_user: Option<String>,
        /// Only through this profile.
        #[arg(long)]
        profile: Option<String>,
        /// When several instances match, take the first instead of asking.
        #[arg(long)]
        first: bool,
        /// Print the AWS sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Sign in to AWS with a code confirmed in any browser (no loopback redirect).
        #[arg(long)]
        use_device_code: bool,
        /// With no grant on the instance: request one with this reason, and wait for it.
        #[arg(long)]
        reason: Option<String>,
        /// How long to ask for, when requesting.
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
    /// Print role credentials for the Session Manager plugin (the credential_process of
    /// the profiles `jitgate ssh` writes); not for typing.
    #[command(hide = true)]
    Credentials {
        #[arg(long)]
        account: String,
        #[arg(long)]
        role_name: String,
        #[arg(long)]
        start_url: String,
        #[arg(long)]
        sso_region: String,
        #[arg(long)]
        sso_session: Option<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}
