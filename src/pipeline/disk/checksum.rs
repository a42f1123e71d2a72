//! The entries' CRC-32C, computed for a whole frame at once.
//!
//! An entry's checksum is `crc32c(length ++ body)` (see `format`). Entries are short (a
//! 200-byte line is a 230-byte entry), and the CPU's crc32 instruction has a latency of 3
//! cycles and a throughput of one per cycle: one entry at a time, every 8-byte step waits for
//! the one before, and the library's 3-way split only starts at 768 bytes. Checksumming four
//! entries side by side keeps the instruction busy: about a third of the cycles per entry
//! (`cargo bench --bench agent -- diskqueue`, where it was 4.5 % of the agent's time). The
//! values are the library's (`tests::frame_checksums_match_the_library`).

/// `crc32c::crc32c(&v.to_le_bytes())` (an entry's length, the start of its checksummed bytes)
/// in one instruction where the CPU has it: a library call per entry cost more than the CRC.
#[inline]
fn crc32c_u32(v: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE4.2 (checked just above).
            return unsafe { !core::arch::x86_64::_mm_crc32_u32(!0, v) };
        }
    }
    crc32c::crc32c(&v.to_le_bytes())
}

/// The checksum of one entry: its length, then its body.
#[inline]
pub fn entry_crc(len: u32, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c_u32(len), body)
}

use super::format::ENTRY_HEADER;

const LANES: usize = 4;

/// Fill in the checksum of every entry of `area` (entries whose lengths are written, their
/// checksum fields still empty). Stops at an entry whose length runs past the area (never
/// the case for a frame the encoder built).
pub fn seal_entries(area: &mut [u8]) {
    let mut group = [(0usize, 0usize); LANES];
    let mut n = 0;
    let mut pos = 0;
    while pos + ENTRY_HEADER <= area.len() {
        let len = u32::from_le_bytes(area[pos..pos + 4].try_into().unwrap()) as usize;
        let body = pos + ENTRY_HEADER;
        if body + len > area.len() {
            break;
        }
        group[n] = (pos, len);
        n += 1;
        if n == LANES {
            seal_group(area, &group);
            n = 0;
        }
        pos = body + len;
    }
    for &(at, len) in &group[..n] {
        let crc = entry_crc(
            len as u32,
            &area[at + ENTRY_HEADER..at + ENTRY_HEADER + len],
        );
        area[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Four entries, given as (start, body length).
fn seal_group(area: &mut [u8], group: &[(usize, usize); LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE4.2 (checked just above).
            let crcs = unsafe { lanes_sse42(area, group) };
            for (&(at, _), crc) in group.iter().zip(crcs) {
                area[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
            }
            return;
        }
    }
    for &(at, len) in group {
        let crc = entry_crc(
            len as u32,
            &area[at + ENTRY_HEADER..at + ENTRY_HEADER + len],
        );
        area[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn lanes_sse42(area: &[u8], group: &[(usize, usize); LANES]) -> [u32; LANES] {
    use core::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let bodies: [&[u8]; LANES] =
        std::array::from_fn(|l| &area[group[l].0 + ENTRY_HEADER..][..group[l].1]);
    let mut state: [u64; LANES] =
        std::array::from_fn(|l| _mm_crc32_u32(!0, group[l].1 as u32) as u64);
    // The 8-byte words all four have, side by side.
    let common = bodies.iter().map(|b| b.len()).min().unwrap_or(0) / 8;
    for i in 0..common {
        for l in 0..LANES {
            let w = u64::from_le_bytes(bodies[l][8 * i..8 * i + 8].try_into().unwrap());
            state[l] = _mm_crc32_u64(state[l], w);
        }
    }
    // The rest of each, one after the other.
    let mut out = [0u32; LANES];
    for l in 0..LANES {
        let rest = &bodies[l][8 * common..];
        let mut words = rest.chunks_exact(8);
        let mut s = state[l];
        for w in &mut words {
            s = _mm_crc32_u64(s, u64::from_le_bytes(w.try_into().unwrap()));
        }
        let mut s = s as u32;
        for &b in words.remainder() {
            s = _mm_crc32_u8(s, b);
        }
        out[l] = !s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_checksum_matches_the_library() {
        for v in [
            0u32,
            1,
            7,
            199,
            232,
            65_535,
            1 << 24,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert_eq!(crc32c_u32(v), crc32c::crc32c(&v.to_le_bytes()), "{v}");
        }
        for v in (0..u32::MAX).step_by(7_919_011) {
            assert_eq!(crc32c_u32(v), crc32c::crc32c(&v.to_le_bytes()), "{v}");
        }
    }

    /// Entries of every length from 1 to 40 bytes and some long ones, in groups whose
    /// lengths differ (ragged tails) and a last group of fewer than four.
    #[test]
    fn frame_checksums_match_the_library() {
        let mut area = Vec::new();
        let mut lens: Vec<usize> = (1..=40).collect();
        lens.extend([200, 231, 777, 1, 4096, 3, 8, 16]);
        for (k, &len) in lens.iter().enumerate() {
            area.extend_from_slice(&(len as u32).to_le_bytes());
            area.extend_from_slice(&[0; 4]);
            area.extend((0..len).map(|i| (i * 31 + k * 7) as u8));
        }
        seal_entries(&mut area);
        let mut pos = 0;
        let mut seen = 0;
        while pos < area.len() {
            let len = u32::from_le_bytes(area[pos..pos + 4].try_into().unwrap());
            let crc = u32::from_le_bytes(area[pos + 4..pos + 8].try_into().unwrap());
            let body = &area[pos + 8..pos + 8 + len as usize];
            let mut expected = len.to_le_bytes().to_vec();
            expected.extend_from_slice(body);
            assert_eq!(
                crc,
                crc32c::crc32c(&expected),
                "entry {seen} of {len} bytes"
            );
            pos += 8 + len as usize;
            seen += 1;
        }
        assert_eq!(seen, lens.len());
    }
}
