//! Linking Slack accounts, as the broker runs it on the core's use cases
//! (`jitgate_core::app::slack_links`: a code sent in Slack, typed back on the web).

pub use jitgate_core::app::SlackLinkStatus;
pub use jitgate_core::app::slack_links::is_member_id;

use super::{Broker, BrokerError};
use crate::aws::IdentityCenter;
use crate::domain::{Actor, User};

impl<I: IdentityCenter> Broker<I> {
    /// Where `actor`'s Slack link stands.
    pub async fn slack_link(&self, actor: &Actor) -> Result<SlackLinkStatus, BrokerError> {
        Ok(self.slack_links.status(actor, self.now()).await?)
    }

    /// Whether `actor` may ask for a code now (before Slack is asked who they name).
    pub async fn may_offer_slack_link(&self, actor: &Actor) -> Result<(), BrokerError> {
        Ok(self.slack_links.may_offer(actor, self.now()).await?)
    }

    /// `actor` says they are Slack member `member`: the code to send that member.
    pub async fn offer_slack_link(
        &self,
        actor: &Actor,
        member: &str,
    ) -> Result<String, BrokerError> {
        Ok(self.slack_links.offer(actor, member, self.now()).await?)
    }

    /// `actor` typed `code`: their account is linked to the member it was sent to (the
    /// member, answered).
    pub async fn confirm_slack_link(
        &self,
        actor: &Actor,
        code: &str,
    ) -> Result<String, BrokerError> {
        Ok(self
            .slack_links
            .confirm(actor, code, self.now())
            .await?
            .member)
    }

    /// Removes `actor`'s link; `false` when there was none.
    pub async fn unlink_slack(&self, actor: &Actor) -> Result<bool, BrokerError> {
        Ok(self.slack_links.unlink(actor, self.now()).await?)
    }

    /// The person who linked Slack member `member`, as last described by their provider.
    pub async fn person_by_slack_member(&self, member: &str) -> Result<Option<User>, BrokerError> {
        let Some(id) = self.slack_links.person(member).await? else {
            return Ok(None);
        };
        Ok(self.people.person(&id).await?)
    }
}
