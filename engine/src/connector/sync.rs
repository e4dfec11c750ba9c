//! Incremental sync: pull an object's records changed since a cursor kept per tenant,
//! connector and object in the store, so that the next run fetches only what changed.

use super::{ConnectorError, Session, scalar};
use crate::store::Store;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

/// What a sync pulled.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    /// Records, in the vendor's order.
    pub records: Vec<Value>,
    /// The cursor before the run (RFC 3339), if any.
    pub since: Option<String>,
    /// The cursor saved after the run (RFC 3339), if it advanced.
    pub cursor: Option<String>,
}

/// Parse a modification time: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), unix seconds or ms.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = scalar(v);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    if let Ok(t) = DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    let n: i64 = s.parse().ok()?;
    if n > 100_000_000_000 {
        Utc.timestamp_millis_opt(n).single()
    } else {
        Utc.timestamp_opt(n, 0).single()
    }
}

fn format_time(t: DateTime<Utc>, format: &str) -> String {
    match format {
        "unix" => t.timestamp().to_string(),
        "unix_ms" => t.timestamp_millis().to_string(),
        "date" => t.format("%Y-%m-%d").to_string(),
        _ => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Pull `object` changed since `since` (else the stored cursor, else everything) and advance
/// the stored cursor to the newest modification time seen. Records not newer than the cursor
/// are dropped (vendors whose filter is inclusive send the last one again).
pub async fn pull(
    session: &Session,
    store: Option<&Store>,
    object: &str,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
) -> Result<SyncResult, ConnectorError> {
    let mut records = Vec::new();
    let s = pull_each(session, store, object, since, limit, |r| {
        records.push(r);
        true
    })
    .await?;
    Ok(SyncResult {
        records,
        since: s.since,
        cursor: s.cursor,
    })
}

/// What [`pull_each`] did.
#[derive(Debug, Clone, Default)]
pub struct SyncSummary {
    /// Records handed over.
    pub records: usize,
    /// The cursor before the run (RFC 3339), if any.
    pub since: Option<String>,
    /// The cursor saved after the run (RFC 3339), if it advanced.
    pub cursor: Option<String>,
    /// The consumer stopped early (its callback answered `false`); the cursor was not moved.
    pub stopped: bool,
}

/// [`pull`], streaming: each record is handed to `f` as its page arrives (nothing is held).
/// When `f` answers `false` the rest is skipped and the cursor stays where it was, so the
/// next run sends those records again; the cursor moves only after every record was taken.
pub async fn pull_each(
    session: &Session,
    store: Option<&Store>,
    object: &str,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
    mut f: impl FnMut(Value) -> bool,
) -> Result<SyncSummary, ConnectorError> {
    let conn = &session.connector;
    let op = conn.sync_op(object).ok_or_else(|| {
        ConnectorError::Config(format!(
            "connector `{}` has no list or incremental operation for object `{object}`",
            conn.name()
        ))
    })?;
    let tenant = &session.binding.tenant;
    let stored = match (since, store) {
        (None, Some(s)) => s
            .cursor(tenant, conn.name(), object)
            .map_err(|e| ConnectorError::Config(e.to_string()))?
            .and_then(|c| parse_time(&Value::String(c))),
        _ => None,
    };
    let since = since.or(stored);
    let inc = op.spec.incremental.clone();
    let mut vars = Map::new();
    let mut extra_query = None;
    if let Some(inc) = &inc {
        let t = since.unwrap_or_else(|| Utc.timestamp_opt(0, 0).single().unwrap_or_default());
        let f = format_time(t, &inc.format);
        vars.insert("since".into(), Value::String(f.clone()));
        if let Some(p) = &inc.param {
            extra_query = Some((p.clone(), f));
        }
    }
    let cursor_field = inc.as_ref().map(|i| i.cursor_field.clone());
    let fields_path = op.fields.clone();
    // The "modified since" parameter rides along as a query parameter when the spec names one.
    if let Some((k, v)) = extra_query {
        let mut q = Map::new();
        q.insert(k, Value::String(v));
        vars.insert("extra_query".into(), Value::Object(q));
    }
    let mut newest = since;
    let mut handed = 0usize;
    let mut stopped = false;
    session
        .list(&op.name, vars, limit, |r| {
            if stopped {
                return;
            }
            let t = cursor_field.as_ref().and_then(|c| {
                let fields = fields_path.as_ref().and_then(|p| p.first(&r)).unwrap_or(&r);
                fields.get(c).and_then(parse_time)
            });
            if let (Some(t), Some(s)) = (t, since)
                && t <= s
            {
                return;
            }
            if let Some(t) = t
                && newest.is_none_or(|n| t > n)
            {
                newest = Some(t);
            }
            if f(r) {
                handed += 1;
            } else {
                stopped = true;
            }
        })
        .await?;
    let cursor = match (newest, store, stopped) {
        (Some(n), Some(s), false) if Some(n) != since => {
            let c = n.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            s.set_cursor(tenant, conn.name(), object, &c)
                .map_err(|e| ConnectorError::Config(e.to_string()))?;
            Some(c)
        }
        _ => None,
    };
    Ok(SyncSummary {
        records: handed,
        since: since.map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        cursor,
        stopped,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_vendor_times() {
        let a = parse_time(&json!("2026-01-02T03:04:05Z")).unwrap();
        assert_eq!(parse_time(&json!("1767323045000")).unwrap(), a);
        assert_eq!(parse_time(&json!(1767323045)).unwrap(), a);
        assert_eq!(parse_time(&json!("2026-01-02 03:04:05")).unwrap(), a);
        assert_eq!(
            parse_time(&json!("2026-01-02T03:04:05.000+0000")).unwrap(),
            a
        );
        assert_eq!(format_time(a, "unix_ms"), "1767323045000");
    }
}
