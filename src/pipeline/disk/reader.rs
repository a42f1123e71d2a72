//! The reader thread: frames from the segments (or straight from the writer when it keeps
//! up) to the output, in queue order, at most `read_ahead` events ahead of the output.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::format::{Decoder, Scanner, Step, SEGMENT_HEADER_LEN};
use super::state::{push_done, Entry, Position};
use super::{lock, wait_timeout, Delivery, Shared, Span};
use crate::monitoring::disk_queue::DiskQueueStats;

pub struct Reader {
    shared: Arc<Shared>,
    /// Where the next frame starts; `seq` is the sequence number expected there.
    pos: Position,
    tx: mpsc::UnboundedSender<Vec<Delivery>>,
    /// Deliveries not handed over yet: sent together before the reader waits.
    outbox: Vec<Delivery>,
    decoder: Decoder,
    scanner: Option<(u64, Scanner)>,
    io_failures: u32,
}

enum Next {
    /// Something was done: look again.
    Again,
    /// Every frame was delivered and the writer finished.
    Finished,
}

impl Reader {
    pub fn new(
        shared: Arc<Shared>,
        start: Position,
        _oldest_ms: u64,
        tx: mpsc::UnboundedSender<Vec<Delivery>>,
    ) -> Self {
        Reader {
            shared,
            pos: start,
            tx,
            outbox: Vec::new(),
            decoder: Decoder::default(),
            scanner: None,
            io_failures: 0,
        }
    }

    pub fn run(mut self) {
        while !self.shared.stopping() && self.flush_if_full() {
            let redeliver = lock(&self.shared.log).redeliver.pop();
            if let Some(id) = redeliver {
                if !self.redeliver(id) {
                    break;
                }
                continue;
            }
            match self.step() {
                Ok(Next::Again) => {}
                Ok(Next::Finished) => {
                    self.flush();
                    break;
                }
                Err(()) => break,
            }
        }
    }

    /// Hand the collected deliveries to the output; false when the output is gone.
    fn flush(&mut self) -> bool {
        if self.outbox.is_empty() {
            return true;
        }
        self.tx.send(std::mem::take(&mut self.outbox)).is_ok()
    }

    fn flush_if_full(&mut self) -> bool {
        if self.outbox.len() >= 64 {
            return self.flush();
        }
        true
    }

    /// Wait for the writer (or a redelivery), handing over what was collected first.
    fn wait_for_writer<'a>(
        &mut self,
        g: std::sync::MutexGuard<'a, super::LogState>,
    ) -> Result<(), ()> {
        let sh = self.shared.clone();
        if !self.outbox.is_empty() {
            drop(g);
            if !self.flush() {
                return Err(());
            }
            return Ok(());
        }
        let mut g = g;
        g.reader_waiting = true;
        let mut g = wait_timeout(&sh.log_cv, g, Duration::from_secs(1));
        g.reader_waiting = false;
        Ok(())
    }

    /// One step; `Err` when the output is gone or the queue stops.
    fn step(&mut self) -> Result<Next, ()> {
        let sh = self.shared.clone();
        let seg = self.pos.segment;
        let mut g = lock(&sh.log);
        let Some(info) = g.segments.get(&seg) else {
            // The position's segment is gone (fully delivered, or removed): the next one.
            let next = g.segments.range(seg + 1..).next().map(|(id, _)| *id);
            drop(g);
            return match next {
                Some(id) => {
                    self.enter_segment(id);
                    Ok(Next::Again)
                }
                None => {
                    let g = lock(&sh.log);
                    if g.writer_done || sh.stopping() {
                        return Ok(Next::Finished);
                    }
                    self.wait_for_writer(g)?;
                    Ok(Next::Again)
                }
            };
        };
        let (len, sealed) = (info.len, info.sealed);
        // A frame the writer just wrote, still in memory?
        let off = self.pos.offset;
        while g
            .tail
            .front()
            .is_some_and(|c| (c.segment, c.offset) < (seg, off))
        {
            if let Some(c) = g.tail.pop_front() {
                g.tail_bytes -= c.header.frame_len() as usize;
            }
        }
        let at_pos = g
            .tail
            .front()
            .is_some_and(|c| c.segment == seg && c.offset == off);
        if at_pos && !g.writer_done && !sh.stopping() {
            // Caught up with the writer: the output takes the next frames from memory.
            if !self.outbox.is_empty() {
                // Everything read before goes first (the output drains the channel first).
                drop(g);
                return if self.flush() {
                    Ok(Next::Again)
                } else {
                    Err(())
                };
            }
            return self.hand_off(g);
        }
        let cached = if at_pos {
            g.tail.pop_front().inspect(|c| {
                g.tail_bytes -= c.header.frame_len() as usize;
            })
        } else {
            None
        };
        if let Some(c) = cached {
            drop(g);
            return self.deliver_cached(c);
        }
        if off < len {
            drop(g);
            return self.read_file(seg, len, sealed);
        }
        if sealed {
            let next = g.segments.range(seg + 1..).next().map(|(id, _)| *id);
            drop(g);
            if let Some(id) = next {
                self.enter_segment(id);
            }
            return Ok(Next::Again);
        }
        if g.writer_done {
            return Ok(Next::Finished);
        }
        // Caught up with the writer.
        if !g.redeliver.is_empty() {
            return Ok(Next::Again);
        }
        self.wait_for_writer(g)?;
        Ok(Next::Again)
    }

    fn enter_segment(&mut self, id: u64) {
        let end = Position {
            segment: id,
            offset: SEGMENT_HEADER_LEN,
            seq: self.pos.seq,
        };
        push_done(&self.shared, self.pos.segment, self.pos.offset, end);
        self.pos = end;
        self.scanner = None;
    }

    /// Let the output take frames from memory until one is not there (then `handoff` is off
    /// again and this thread goes on from `handoff_pos`). Meanwhile this thread only serves
    /// redeliveries.
    fn hand_off(&mut self, g: std::sync::MutexGuard<'_, super::LogState>) -> Result<Next, ()> {
        let sh = self.shared.clone();
        let mut g = g;
        g.handoff = true;
        g.handoff_pos = self.pos;
        drop(g);
        sh.output_cv.notify_one();
        let mut g = lock(&sh.log);
        loop {
            if sh.stopping() {
                return Err(());
            }
            if g.handoff && g.writer_done {
                // The last frames: delivered from here, then the channel closes.
                g.handoff = false;
            }
            if !g.handoff {
                self.pos = g.handoff_pos;
                return Ok(Next::Again);
            }
            if let Some(id) = g.redeliver.pop() {
                drop(g);
                if !self.redeliver(id) || !self.flush() {
                    return Err(());
                }
                g = lock(&sh.log);
                continue;
            }
            g = wait_timeout(&sh.log_cv, g, Duration::from_secs(1));
        }
    }

    /// A frame the writer just wrote, delivered from memory by this thread (the writer is
    /// done, so there is no hand-off).
    fn deliver_cached(&mut self, c: super::Cached) -> Result<Next, ()> {
        let h = c.header;
        if let Some((id, sc)) = &mut self.scanner {
            if *id == c.segment {
                sc.pos = c.offset + h.frame_len();
            }
        }
        let d = super::format::Decoded {
            events: c.events,
            problems: Vec::new(),
            lost: 0,
        };
        self.settle(c.segment, c.offset, h, d)?;
        Ok(Next::Again)
    }

    fn read_file(&mut self, seg: u64, len: u64, sealed: bool) -> Result<Next, ()> {
        let sh = self.shared.clone();
        if self.scanner.as_ref().map(|(id, _)| *id) != Some(seg) {
            match File::open(sh.segment_path(seg)) {
                Ok(f) => {
                    self.scanner =
                        Some((seg, Scanner::new(Arc::new(f), self.pos.offset, len, true)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::error!(segment = seg, "disk queue: segment file removed while its events were not delivered; continuing with the next");
                    self.skip_segment(seg);
                    return Ok(Next::Again);
                }
                Err(e) => return self.io_failure(seg, e),
            }
        }
        let Some((_, sc)) = self.scanner.as_mut() else {
            return Ok(Next::Again);
        };
        sc.pos = self.pos.offset;
        sc.limit = len;
        let step = match sc.next_step() {
            Ok(s) => s,
            Err(e) => return self.io_failure(seg, e),
        };
        self.io_failures = 0;
        match step {
            Step::Frame {
                offset,
                header,
                area,
            } => {
                self.deliver(seg, offset, header, area)?;
            }
            Step::Corrupt { offset, end } => self.skip(seg, offset, end, "damaged bytes"),
            Step::Tail { offset, end, .. } => {
                // Only reachable if the file changed under the queue: written data is read up
                // to frame boundaries, and tails were cut at start.
                self.skip(
                    seg,
                    offset,
                    end,
                    "damaged bytes up to the end of what was written",
                );
                if !sealed {
                    tracing::error!(segment = seg, "disk queue: the segment being written is damaged; later frames of it may be lost");
                }
            }
            Step::End => {}
        }
        Ok(Next::Again)
    }

    fn io_failure(&mut self, seg: u64, e: std::io::Error) -> Result<Next, ()> {
        self.io_failures += 1;
        let delay = self
            .shared
            .settings
            .retry
            .saturating_mul(1 << (self.io_failures.min(6) - 1))
            .min(self.shared.settings.max_retry);
        tracing::warn!(error = %e, segment = seg, retry_in = ?delay, "disk queue: read failed; retrying");
        self.scanner = None;
        if !self.shared.pause(delay) {
            return Err(());
        }
        Ok(Next::Again)
    }

    fn skip_segment(&mut self, seg: u64) {
        let next = {
            let mut g = lock(&self.shared.log);
            g.segments.remove(&seg);
            g.segments.range(seg + 1..).next().map(|(id, _)| *id)
        };
        if let Some(id) = next {
            self.enter_segment(id);
        }
    }

    /// Step over bytes that hold no frame.
    fn skip(&mut self, seg: u64, offset: u64, end: u64, what: &str) {
        let sh = self.shared.clone();
        let new = lock(&sh.known).insert((seg, offset));
        if new {
            DiskQueueStats::add(&sh.stats().corrupt_frames, 1);
            sh.move_aside(seg, offset, end);
            tracing::error!(segment = seg, offset, end, path = %sh.dir.join("corrupt").display(), "disk queue: segment {seg} offset {offset}: {what} ({} bytes) skipped; a copy is kept for inspection, the frames after it are delivered", end - offset);
        }
        let to = Position {
            segment: seg,
            offset: end,
            seq: self.pos.seq,
        };
        push_done(&sh, seg, offset, to);
        self.pos = to;
    }

    /// Decode a frame and hand its events to the output.
    fn deliver(
        &mut self,
        seg: u64,
        offset: u64,
        h: super::format::FrameHeader,
        area: Bytes,
    ) -> Result<(), ()> {
        let d = self.decoder.decode(&h, &area);
        self.settle(seg, offset, h, d)
    }

    /// Account for a decoded frame and hand its events to the output.
    fn settle(
        &mut self,
        seg: u64,
        offset: u64,
        h: super::format::FrameHeader,
        d: super::format::Decoded,
    ) -> Result<(), ()> {
        let sh = self.shared.clone();
        let stats = sh.stats();
        if h.first_seq > self.pos.seq && !lock(&sh.known).contains(&(seg, offset)) {
            let lost = h.first_seq - self.pos.seq;
            DiskQueueStats::add(&stats.corrupt_events, lost);
            tracing::error!(
                segment = seg,
                offset,
                lost,
                "disk queue: events missing before this frame (lost in damaged data)"
            );
        }
        if !d.problems.is_empty() {
            DiskQueueStats::add(&stats.corrupt_frames, 1);
            DiskQueueStats::add(&stats.corrupt_events, d.lost as u64);
            // Lost events never reach the output: they leave the pipeline here.
            sh.metrics
                .gauges
                .pipeline_active
                .fetch_sub(d.lost as i64, std::sync::atomic::Ordering::Relaxed);
            sh.move_aside(seg, offset, offset + h.frame_len());
            let first = &d.problems[0];
            tracing::error!(
                segment = seg,
                offset = offset + first.at,
                frame = offset,
                lost = d.lost,
                damaged_entries = d.problems.len(),
                "disk queue: segment {seg} offset {}: damaged entry skipped ({}; {} damaged entries in this frame, {} events lost); a copy of the frame is kept in corrupt/",
                offset + first.at,
                first.reason,
                d.problems.len(),
                d.lost
            );
        }
        DiskQueueStats::add(&stats.read_events, d.events.len() as u64);
        DiskQueueStats::add(&stats.read_bytes, h.frame_len());
        let end = Position {
            segment: seg,
            offset: offset + h.frame_len(),
            seq: (h.first_seq + h.count as u64).max(self.pos.seq),
        };
        self.pos = end;
        if d.events.is_empty() {
            // Nothing to deliver, but the frame's count leaves the queue.
            let mut g = lock(&sh.acks);
            g.push(
                Entry {
                    segment: seg,
                    offset,
                    end,
                    count: h.count,
                    written_ms: h.written_ms,
                    acked: true,
                },
                stats,
            );
            g.advance(stats);
            return Ok(());
        }
        let id = lock(&sh.acks).push(
            Entry {
                segment: seg,
                offset,
                end,
                count: h.count,
                written_ms: h.written_ms,
                acked: false,
            },
            stats,
        );
        self.send(d.events, id)
    }

    fn send(&mut self, events: Vec<crate::event::Event>, id: u64) -> Result<(), ()> {
        let sh = self.shared.clone();
        let want = events.len().clamp(1, sh.settings.read_ahead);
        {
            let mut s = lock(&sh.slots);
            if *s < want && !self.outbox.is_empty() {
                // The output has to take what is collected before there is room.
                drop(s);
                if !self.flush() {
                    return Err(());
                }
                s = lock(&sh.slots);
            }
            while *s < want {
                if sh.stopping() {
                    return Err(());
                }
                s = wait_timeout(&sh.slots_cv, s, Duration::from_secs(1));
            }
            *s -= want;
        }
        let span = Span {
            shared: sh.clone(),
            id,
            done: false,
        };
        self.outbox.push(Delivery {
            events,
            span,
            slots: want,
        });
        Ok(())
    }

    /// Deliver ack-log entry `id` again (its batch was dropped unacknowledged).
    fn redeliver(&mut self, id: u64) -> bool {
        let sh = self.shared.clone();
        let (seg, offset, end) = {
            let g = lock(&sh.acks);
            match g.get(id) {
                Some(e) if !e.acked => (e.segment, e.offset, e.end.offset),
                _ => return true,
            }
        };
        let events = match File::open(sh.segment_path(seg)) {
            Ok(f) => {
                let mut sc = Scanner::new(Arc::new(f), offset, end, true);
                match sc.next_step() {
                    Ok(Step::Frame { header, area, .. }) => {
                        self.decoder.decode(&header, &area).events
                    }
                    _ => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        if events.is_empty() {
            // Nothing readable any more: settle the entry so the queue moves on.
            super::state::ack(&sh, id);
            return true;
        }
        self.send(events, id).is_ok()
    }
}
