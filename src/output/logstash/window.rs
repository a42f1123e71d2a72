//! `slow_start`: the window size per connection, as Filebeat's
//! `libbeat/outputs/logstash/window.go`: start at 10 events, grow ×1.5 (rounded up) after each
//! fully ACKed window up to `bulk_max_size`, and halve (down to 1) on an error. Once a size
//! failed, growth above the largest size that worked (`max_ok`) is cautious, as there.

/// Filebeat's `defaultStartMaxWindowSize`.
pub const START: usize = 10;
/// Filebeat's `minWindowSize`.
pub const MIN: usize = 1;

#[derive(Debug, Clone)]
pub struct Window {
    size: usize,
    max_ok: usize,
    max: usize,
    enabled: bool,
}

impl Window {
    /// Without slow start the window is always `max` (`bulk_max_size`).
    pub fn new(slow_start: bool, max: usize) -> Self {
        let max = max.max(MIN);
        Window {
            size: if slow_start { START.min(max) } else { max },
            max_ok: 0,
            max,
            enabled: slow_start,
        }
    }

    pub fn get(&self) -> usize {
        self.size
    }

    /// A window of `sent` events (out of a batch of `batch` events) was ACKed in full.
    pub fn grow(&mut self, batch: usize) {
        if !self.enabled || self.size > batch {
            return;
        }
        let w = self.size;
        if self.max_ok < w {
            self.max_ok = w;
            let mut next = (w * 3).div_ceil(2);
            if w <= batch && batch < next {
                next = batch;
            }
            self.size = next.min(self.max);
        } else if w < self.max_ok {
            self.size = (w * 3).div_ceil(2).min(self.max_ok);
        }
    }

    /// An error on the connection: halve.
    pub fn shrink(&mut self) {
        if self.enabled {
            self.size = (self.size / 2).max(MIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_to_the_bulk_size_and_halves_on_error() {
        let mut w = Window::new(true, 100);
        let mut seen = vec![w.get()];
        for _ in 0..8 {
            w.grow(2048);
            seen.push(w.get());
        }
        assert_eq!(seen, [10, 15, 23, 35, 53, 80, 100, 100, 100]);
        w.shrink();
        assert_eq!(w.get(), 50);
        // Below the largest size that worked it grows again, up to that size.
        w.grow(2048);
        assert_eq!(w.get(), 75);
        w.grow(2048);
        assert_eq!(w.get(), 100);
        // A small batch caps the growth at its size.
        let mut w = Window::new(true, 2048);
        w.grow(12);
        assert_eq!(w.get(), 12);
        let mut w = Window::new(true, 100);
        for _ in 0..10 {
            w.shrink();
        }
        assert_eq!(w.get(), 1);
    }

    #[test]
    fn without_slow_start_it_is_the_bulk_size() {
        let mut w = Window::new(false, 2048);
        w.shrink();
        w.grow(10);
        assert_eq!(w.get(), 2048);
    }
}
