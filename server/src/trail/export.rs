//! Export of the trail as JSON lines or CSV, streamed page by page.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::{Db, StoreError, audit as stored};

/// Output format of `audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write the export: {0}")]
    Csv(#[from] csv::Error),
}

/// Writes every event at or after `since` (all when `None`) to `out`; returns the count.
pub async fn export(
    db: &Db,
    since: Option<DateTime<Utc>>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut pages = Pages {
        since_millis: since.map_or(i64::MIN, |t| t.timestamp_millis()),
        after_seq: 0,
        done: false,
    };
    let mut count = 0;
    match format {
        ExportFormat::Jsonl => {
            while let Some(page) = pages.next(db).await? {
                for event in page {
                    serde_json::to_writer(&mut *out, &event).map_err(std::io::Error::from)?;
                    out.write_all(b"\n")?;
                    count += 1;
                }
            }
            out.flush()?;
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "at",
                "actor",
                "action",
                "request_id",
                "details",
                "prev_hash",
                "hash",
                "key_id",
            ])?;
            while let Some(page) = pages.next(db).await? {
                for event in page {
                    w.write_record([
                        event.seq.to_string(),
                        event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                        inert(event.actor),
                        inert(event.action.to_string()),
                        inert(event.request_id.unwrap_or_default()),
                        inert(event.details.to_string()),
                        event.prev_hash,
                        event.hash,
                        event.key_id.unwrap_or_default(),
                    ])?;
                    count += 1;
                }
            }
            w.flush()?;
        }
    }
    Ok(count)
}

/// A CSV cell a spreadsheet will not run: one that starts like a formula (`=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP's CSV injection
/// advice). Any cell whose text people chose goes through here.
fn inert(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// Reads the trail in pages so an export of any size runs in bounded memory.
struct Pages {
    since_millis: i64,
    after_seq: i64,
    done: bool,
}

impl Pages {
    const SIZE: i64 = 1000;

    async fn next(&mut self, db: &Db) -> Result<Option<Vec<crate::audit::AuditEvent>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = stored::page_since(db, self.since_millis, self.after_seq, Self::SIZE).await?;
        self.done = (page.len() as i64) < Self::SIZE;
        match page.last() {
            Some(last) => {
                self.after_seq = last.seq;
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_made_inert() {
        for formula in ["=HYPERLINK(\"x\")", "+1", "-1+1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(inert(formula.into()).starts_with('\''), "{formula:?}");
        }
        assert_eq!(inert("sub-alice".into()), "sub-alice");
        assert_eq!(inert("{\"a\":1}".into()), "{\"a\":1}");
    }
}
