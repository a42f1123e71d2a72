//! The time range of a search: `--since 24h`, or `--from`/`--until` as RFC 3339 times, dates
//! or `now-2d`, resolved once to absolute milliseconds so the query, the Discover URL and the
//! answer's prompt all name the same range.

use crate::config::units::parse_duration;

/// An absolute range in Unix milliseconds; `from` is open when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: Option<i64>,
    pub until_ms: i64,
}

/// What the command line gave.
#[derive(Debug, Clone, Default)]
pub struct RangeArgs {
    pub since: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
}

/// The default look-back when neither `--since` nor `--from` is given.
pub const DEFAULT_SINCE: &str = "24h";

impl TimeRange {
    /// Resolve the arguments against `now_ms`.
    pub fn resolve(args: &RangeArgs, now_ms: i64) -> Result<TimeRange, String> {
        let until_ms = match &args.until {
            Some(u) => parse_point(u, now_ms).map_err(|e| format!("--until: {e}"))?,
            None => now_ms,
        };
        let from_ms = match (&args.since, &args.from) {
            (Some(_), Some(_)) => return Err("give either --since or --from, not both".into()),
            (Some(s), None) => Some(since(s, until_ms)?),
            (None, Some(f)) => Some(parse_point(f, now_ms).map_err(|e| format!("--from: {e}"))?),
            (None, None) => Some(since(DEFAULT_SINCE, until_ms)?),
        };
        if let Some(f) = from_ms {
            if f >= until_ms {
                return Err(format!(
                    "the range is empty: it starts at {} and ends at {}",
                    format_ms(f),
                    format_ms(until_ms)
                ));
            }
        }
        Ok(TimeRange { from_ms, until_ms })
    }
}

fn since(s: &str, until_ms: i64) -> Result<i64, String> {
    if s == "all" {
        return Ok(0);
    }
    let d = parse_duration(s).map_err(|e| format!("--since: {e} (e.g. 30m, 24h, 7d)"))?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("--since {s:?} is too long"))?;
    Ok(until_ms.saturating_sub(ms))
}

/// `now`, `now-<duration>`, an RFC 3339 time (`2026-11-25T22:00:00Z`, `+01:00`), a time
/// without zone (read as UTC: `2026-11-25T22:00`, `2026-11-25 22:00:00`) or a date
/// (`2026-11-25`, midnight UTC).
pub fn parse_point(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Some(rest) = t.strip_prefix("now-") {
        let d = parse_duration(rest).map_err(|e| format!("{t:?}: {e}"))?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{t:?} is too far back"))?;
        return Ok(now_ms.saturating_sub(ms));
    }
    let mut candidates = vec![t.to_string()];
    match t.len() {
        10 => candidates.push(format!("{t}T00:00:00Z")),
        16 => candidates.push(format!("{t}:00Z")),
        _ => candidates.push(format!("{t}Z")),
    }
    for c in &candidates {
        if let Some(ns) = crate::processors::parse_timestamp(c) {
            return Ok(ns.div_euclid(1_000_000));
        }
    }
    Err(format!(
        "{t:?} is not a time: use RFC 3339 (2026-11-25T22:00:00Z), a date (2026-11-25) or now-2h"
    ))
}

/// `2026-11-25T22:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, mo, d) = crate::event::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_634_400_000; // 2026-11-25T19:20:00Z

    fn args(since: Option<&str>, from: Option<&str>, until: Option<&str>) -> RangeArgs {
        RangeArgs {
            since: since.map(str::to_string),
            from: from.map(str::to_string),
            until: until.map(str::to_string),
        }
    }

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(format_ms(NOW), "2026-11-25T19:20:00.000Z");
        assert_eq!(parse_point("2026-11-25T19:20:00Z", 0), Ok(NOW));
        assert_eq!(parse_point("2026-11-25T20:20:00+01:00", 0), Ok(NOW));
        assert_eq!(parse_point("2026-11-25T19:20", 0), Ok(NOW));
        assert_eq!(parse_point("2026-11-25 19:20:00", 0), Ok(NOW));
        assert_eq!(
            parse_point("2026-11-25", 0).map(format_ms),
            Ok("2026-11-25T00:00:00.000Z".into())
        );
        assert_eq!(parse_point("now-2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_point("now", NOW), Ok(NOW));
        let e = parse_point("yesterday", NOW).unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn ranges() {
        let r = TimeRange::resolve(&args(None, None, None), NOW).unwrap();
        assert_eq!(r.from_ms, Some(NOW - 86_400_000));
        assert_eq!(r.until_ms, NOW);
        let r = TimeRange::resolve(&args(Some("7d"), None, None), NOW).unwrap();
        assert_eq!(r.from_ms, Some(NOW - 7 * 86_400_000));
        let r = TimeRange::resolve(
            &args(
                None,
                Some("2026-11-24T20:00:00Z"),
                Some("2026-11-24T22:00:00Z"),
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(r.until_ms - r.from_ms.unwrap(), 7_200_000);
        let e = TimeRange::resolve(&args(Some("1h"), Some("now-2h"), None), NOW).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = TimeRange::resolve(&args(None, Some("now"), Some("now-1h")), NOW).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = TimeRange::resolve(&args(Some("24"), None, None), NOW).unwrap_err();
        assert!(e.contains("--since"), "{e}");
    }
}
