//! `GET /admin/audit/export?format=jsonl|csv&since=`: the audit trail as a download,
//! streamed while it is read (bounded memory whatever its size).
//!
//! The broker's `AuditExport` writes to a blocking `std::io::Write`, so it runs on a thread of the
//! blocking pool; [`ChannelWriter`] hands its output to the response body in chunks over
//! a bounded channel, so a slow client slows the export down instead of filling memory. A failure after the download started
//! aborts the response, so a cut-short file never looks complete.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{parse_since, require_admin};
use crate::http::pages::{OrPage, PageResult, Viewer};
use crate::http::{AppState, WebError};
use crate::trail::ExportFormat;

/// Bytes buffered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the export and the client.
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(in crate::http::pages) struct ExportQuery {
    format: String,
    since: String,
}

/// `GET /admin/audit/export`.
pub(in crate::http::pages) async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ExportQuery>,
) -> PageResult {
    require_admin(&state, &viewer.user).or_page(&viewer)?;
    let (format, extension, content_type) = match query.format.trim() {
        "jsonl" | "" => (ExportFormat::Jsonl, "jsonl", "application/x-ndjson"),
        "csv" => (ExportFormat::Csv, "csv", "text/csv; charset=utf-8"),
        other => {
            return Err(viewer.refuse(WebError::BadRequest(format!(
                "`{other}` is not an export format; use format=jsonl or format=csv"
            ))));
        }
    };
    let now = state.broker.now();
    let since = parse_since(&query.since, now).or_page(&viewer)?;
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let export = state
        .broker
        .audit_export(&viewer.user.actor, since, format)
        .or_page(&viewer)?;
    let actor = viewer.user.user.id.clone();
    // A thread of the blocking pool: the writer may block there until the client
    // catches up, and the runtime's workers stay free.
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let result = match futures::executor::block_on(export.write(&mut out)) {
            Ok(count) => out.flush().map(|()| count),
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        match result {
            Ok(count) => tracing::info!(%actor, count, "audit exported"),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::warn!(%actor, "audit export stopped: the client went away");
            }
            Err(e) => {
                tracing::error!(%actor, error = %e, "audit export failed");
                // The client may be gone already; then nobody needs to hear it.
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let filename = format!("jitgate-audit-{}.{extension}", now.format("%Y%m%dT%H%M%SZ"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// A blocking writer feeding the response body; see the module comment.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
