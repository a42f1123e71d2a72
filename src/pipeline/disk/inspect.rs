//! `oxibeat queue show` and `oxibeat queue check`: read-only looks at a disk queue directory
//! (safe beside a running agent: nothing is locked, cut or moved).

use std::fmt::Write as _;
use std::path::Path;

use super::state::{walk, ProblemKind, Walk, WalkMode};
use super::DiskQueueError;
use crate::event::format_timestamp;

pub struct Summary {
    pub events: u64,
    pub bytes: u64,
    pub segments: usize,
    pub oldest_ms: Option<u64>,
    pub walk: Walk,
}

/// Events, size and oldest event of the queue in `dir` (read only).
pub fn summary(dir: &Path) -> Result<Summary, DiskQueueError> {
    let w = walk(dir, WalkMode::Look)?;
    Ok(Summary {
        events: w.events,
        bytes: w.segments.iter().map(|s| s.len).sum::<u64>()
            + w.delivered
                .iter()
                .filter_map(|(_, p)| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>(),
        segments: w.segments.len() + w.delivered.len(),
        oldest_ms: w.oldest_ms,
        walk: w,
    })
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(ms: u64) -> String {
    let now = crate::pipeline::disk::now_ms();
    let s = now.saturating_sub(ms) / 1000;
    let ts = format_timestamp(ms as i64 * 1_000_000);
    if s >= 3600 {
        format!("{ts} ({}h{:02}m ago)", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{ts} ({}m{:02}s ago)", s / 60, s % 60)
    } else {
        format!("{ts} ({s}s ago)")
    }
}

/// `oxibeat queue show`.
pub fn show(dir: &Path) -> Result<String, DiskQueueError> {
    let s = summary(dir)?;
    let w = &s.walk;
    let mut out = String::new();
    let _ = writeln!(out, "disk queue {}", dir.display());
    let _ = writeln!(
        out,
        "  events:   {} not yet acknowledged by the output",
        s.events
    );
    let _ = writeln!(
        out,
        "  size:     {} in {} segment files",
        human(s.bytes),
        s.segments
    );
    match s.oldest_ms {
        Some(ms) if s.events > 0 => {
            let _ = writeln!(out, "  oldest:   written {}", age(ms));
        }
        _ => {
            let _ = writeln!(out, "  oldest:   -");
        }
    }
    let _ = writeln!(
        out,
        "  position: segment {} offset {} (next event seq {}){}",
        w.acked.segment,
        w.acked.offset,
        w.acked.seq,
        if w.state_found {
            ""
        } else {
            " (no state.json yet)"
        }
    );
    for (id, _) in &w.delivered {
        let _ = writeln!(out, "  {id}.seg  delivered, deleted at the next start");
    }
    for seg in &w.segments {
        let _ = writeln!(
            out,
            "  {}.seg  {:>10}  {} frames, {} events unacknowledged{}",
            seg.id,
            human(seg.len),
            seg.frames,
            seg.events,
            seg.created_ms
                .map(|c| format!(", created {}", format_timestamp(c as i64 * 1_000_000)))
                .unwrap_or_default()
        );
    }
    for p in &w.problems {
        let _ = writeln!(out, "  problem: {}", p.describe());
    }
    Ok(out)
}

pub struct CheckReport {
    pub text: String,
    /// False when damage was found (torn tails are not damage: they are cut at the next start).
    pub ok: bool,
}

/// `oxibeat queue check`: decode every entry of every frame of every segment.
pub fn check(dir: &Path) -> Result<CheckReport, DiskQueueError> {
    let w = walk(dir, WalkMode::Check)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "disk queue {}: {} segments, {} frames, {} events checked ({} unacknowledged)",
        dir.display(),
        w.segments.len(),
        w.frames_checked,
        w.events_checked,
        w.events
    );
    let mut damage = 0;
    let mut lost = 0;
    for p in &w.problems {
        let tag = match p.kind {
            ProblemKind::TornTail => "note",
            ProblemKind::Empty | ProblemKind::State(_) => "warning",
            _ => "DAMAGE",
        };
        if p.is_damage() {
            damage += 1;
            lost += p.lost;
        }
        let mut line = p.describe();
        if p.kind == ProblemKind::TornTail {
            line.push_str(
                "; cut at the next start (normal after a crash, or while the agent writes)",
            );
        }
        let _ = writeln!(out, "  {tag}: {line}");
    }
    if damage == 0 {
        let _ = writeln!(out, "OK: every frame is intact");
    } else {
        let _ = writeln!(
            out,
            "{damage} damaged places, {lost} events known lost; the agent reports, keeps a copy of and skips each at its next start"
        );
    }
    Ok(CheckReport {
        text: out,
        ok: damage == 0,
    })
}
