//! Partitioners compatible with Filebeat's (libbeat/outputs/kafka/partition.go), so a migration
//! from Filebeat keeps the same key → partition mapping.
//!
//! `hash` is FNV-1a 32-bit over the key (or the concatenated fields), then
//! `(h & 0x7fff_ffff) % partitions`. Java clients use murmur2 instead, so a Java producer with the
//! same key lands on a different partition; that is Filebeat's behaviour too.

use serde_json::Value;

use crate::event::Event;
use crate::processors::{lookup, Found};

use super::config::PartitionConfig;
use super::KafkaError;

/// FNV-1a 32-bit (Go's `hash/fnv.New32a`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u32);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0x811c_9dc5)
    }
}

impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u32;
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
    pub fn finish(self) -> u32 {
        self.0
    }
}

pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h = Fnv1a::default();
    h.write(bytes);
    h.finish()
}

/// Filebeat's `hash2Partition` after the negative-partition fix (beats PR #25048).
pub fn hash_to_partition(hash: u32, partitions: i32) -> i32 {
    ((hash & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// A small PRNG (xorshift64*): partition choice needs spread, not cryptographic quality.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = crate::event::now_nanos() as u64 ^ (std::process::id() as u64) << 32;
        Rng(seed | 1)
    }
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
    fn below(&mut self, n: i32) -> i32 {
        (self.next() % n.max(1) as u32) as i32
    }
}

#[derive(Debug)]
enum Strategy {
    /// Hash the key; random without a key.
    KeyHash,
    FieldsHash {
        fields: Vec<String>,
        random: bool,
    },
    RoundRobin {
        group: u32,
        next: Option<u32>,
        left: u32,
    },
    Random {
        group: u32,
        current: i32,
        left: u32,
    },
}

#[derive(Debug)]
pub struct Partitioner {
    strategy: Strategy,
    rng: Rng,
}

impl Partitioner {
    pub fn new(cfg: Option<&PartitionConfig>) -> Result<Self, KafkaError> {
        let strategy = match cfg {
            None => Strategy::KeyHash,
            Some(p) => {
                let set = [
                    p.hash.is_some(),
                    p.round_robin.is_some(),
                    p.random.is_some(),
                ];
                match set.iter().filter(|x| **x).count() {
                    0 => Strategy::KeyHash,
                    1 => {
                        if let Some(h) = &p.hash {
                            if h.hash.is_empty() {
                                Strategy::KeyHash
                            } else {
                                Strategy::FieldsHash {
                                    fields: h.hash.clone(),
                                    random: h.random,
                                }
                            }
                        } else if let Some(r) = &p.round_robin {
                            Strategy::RoundRobin {
                                group: r.group_events.max(1),
                                next: None,
                                left: 0,
                            }
                        } else if let Some(r) = &p.random {
                            Strategy::Random {
                                group: r.group_events.max(1),
                                current: 0,
                                left: 0,
                            }
                        } else {
                            Strategy::KeyHash
                        }
                    }
                    _ => {
                        return Err(KafkaError::Config(crate::config::ConfigError::new(
                            "output.kafka.partition",
                            "too many partitioners: set only one of hash, round_robin, random",
                        )))
                    }
                }
            }
        };
        Ok(Partitioner {
            strategy,
            rng: Rng::new(),
        })
    }

    /// True when the event has no key under the default strategy: Filebeat then picks a random
    /// partition, and there is no mapping to keep, so the output chooses freely: a [`Sticky`]
    /// partition per batch, or librdkafka's own partitioner when the output's metadata is old.
    pub fn keyless(&self, key: Option<&[u8]>) -> bool {
        matches!(self.strategy, Strategy::KeyHash) && key.is_none()
    }

    /// The partition of one event among `partitions` (> 0), or an error message for a
    /// permanent failure (a missing hash field with `random = false`).
    pub fn partition(
        &mut self,
        ev: &Event,
        key: Option<&[u8]>,
        partitions: i32,
    ) -> Result<i32, String> {
        let n = partitions.max(1);
        match &mut self.strategy {
            Strategy::KeyHash => Ok(match key {
                Some(k) => hash_to_partition(fnv1a(k), n),
                None => self.rng.below(n),
            }),
            Strategy::FieldsHash { fields, random } => {
                let mut h = Fnv1a::default();
                for f in fields.iter() {
                    match lookup(ev, f) {
                        Some(found) => {
                            if let Err(e) = hash_value(&mut h, &found) {
                                if *random {
                                    return Ok(self.rng.below(n));
                                }
                                return Err(format!("hashing partition key failed: {f}: {e}"));
                            }
                        }
                        None if *random => return Ok(self.rng.below(n)),
                        None => {
                            return Err(format!(
                                "hashing partition key failed: field {f} is missing"
                            ))
                        }
                    }
                }
                Ok(hash_to_partition(h.finish(), n))
            }
            Strategy::RoundRobin { group, next, left } => {
                let cur = match next {
                    Some(c) => *c,
                    None => self.rng.next() & 0x7fff_ffff,
                };
                let p = (cur % n as u32) as i32;
                if *left + 1 >= *group {
                    *left = 0;
                    *next = Some((p as u32 + 1) % n as u32);
                } else {
                    *left += 1;
                    *next = Some(p as u32);
                }
                Ok(p)
            }
            Strategy::Random {
                group,
                current,
                left,
            } => {
                if *left == 0 || *current >= n {
                    *current = self.rng.below(n);
                    *left = *group;
                }
                *left -= 1;
                Ok(*current)
            }
        }
    }
}

/// Where keyless events go under the default strategy, per topic: one partition per batch,
/// taking turns among the partitions that had a leader in the latest metadata, from a random
/// start. A batch in one partition fills Kafka batches as librdkafka's sticky partitioner
/// does (fewer, larger requests, better compression), without that partitioner's work per
/// message (a clock read and a partition check under the topic lock), and Filebeat's spread
/// over partitions still holds across batches.
#[derive(Debug)]
pub struct Sticky {
    next: usize,
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            next: Rng::new().next() as usize,
        }
    }
}

impl Sticky {
    /// The partition for the next batch among `live`, or `None` when none has a leader.
    pub fn next(&mut self, live: &[i32]) -> Option<i32> {
        let p = *live.get(self.next % live.len().max(1))?;
        self.next = self.next.wrapping_add(1);
        Some(p)
    }
}

/// Feed one field value into the hasher the way Filebeat does: strings as bytes, integers as
/// 8 little-endian bytes (Go int64), floats formatted like Go's `FormatFloat(v, 'g', -1, 32)`.
fn hash_value(h: &mut Fnv1a, v: &Found<'_>) -> Result<(), String> {
    if let Some(s) = v.as_str() {
        h.write(s.as_bytes());
        return Ok(());
    }
    match v.value() {
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                h.write(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                h.write(&u.to_le_bytes());
            } else if let Some(f) = n.as_f64() {
                // Go formats with bitSize 32 even for float64: shortest repr of the f32.
                h.write((f as f32).to_string().as_bytes());
            }
            Ok(())
        }
        Some(Value::Bool(b)) => {
            h.write(&[*b as u8]);
            Ok(())
        }
        _ => Err("can not hash a value of this type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_standard_values() {
        assert_eq!(fnv1a(b""), 0x811c9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn upstream_hash2partition_vectors() {
        for (h, n, want) in [
            (0x7FFF_FFFFu32, 12, 7),
            (0x8000_0000, 12, 0),
            (0xFFFF_FFFF, 12, 7),
            (0, 12, 0),
            (1, 12, 1),
        ] {
            assert_eq!(hash_to_partition(h, n), want, "hash {h:#x} n {n}");
        }
    }

    #[test]
    fn negative_partition_fix_vectors() {
        assert_eq!(fnv1a(b"16000002EFEBA11E"), 0x8000_0000);
        assert_eq!(fnv1a(b"2304669687"), 0x8000_0000);
        assert_eq!(fnv1a(b"2304669686"), 0x8100_0193);
        assert_eq!(fnv1a(b"1468509572224"), 0x8000_0000);
        assert_eq!(hash_to_partition(fnv1a(b"16000002EFEBA11E"), 3), 0);
        assert_eq!(hash_to_partition(fnv1a(b"16000002EFEBA11E"), 12), 0);
        assert_eq!(hash_to_partition(fnv1a(b"2304669687"), 3), 0);
        assert_eq!(hash_to_partition(fnv1a(b"2304669686"), 3), 2);
        assert_eq!(hash_to_partition(fnv1a(b"2304669686"), 12), 11);
    }

    /// Every row of the extra-vectors table in kafka-partition.md.
    pub(crate) const KEY_VECTORS: &[(&str, u32, [i32; 8])] = &[
        ("", 0x811c9dc5, [0, 1, 2, 5, 5, 8, 5, 5]),
        ("a", 0xe40c292c, [0, 0, 2, 2, 8, 2, 12, 12]),
        ("foo", 0xa9f37ed7, [0, 1, 1, 1, 7, 10, 7, 23]),
        ("bar", 0x76b77d1a, [0, 0, 2, 2, 2, 2, 10, 26]),
        ("foobar", 0xbf9cf968, [0, 0, 2, 2, 8, 2, 8, 8]),
        ("hello", 0x4f9f2cab, [0, 1, 0, 3, 3, 3, 11, 11]),
        ("192.168.1.1", 0x7d5c08a4, [0, 0, 2, 2, 8, 14, 4, 4]),
        ("host-1", 0x91b72475, [0, 1, 2, 5, 5, 8, 5, 21]),
        ("web01", 0x7274cae6, [0, 0, 2, 2, 2, 2, 6, 6]),
        (
            "550e8400-e29b-41d4-a716-446655440000",
            0x889e3528,
            [0, 0, 1, 4, 4, 4, 8, 8],
        ),
    ];
    pub(crate) const NS: [i32; 8] = [1, 2, 3, 6, 12, 15, 16, 32];

    #[test]
    fn extra_key_vectors() {
        let ev = crate::processors::testutil::line("x");
        let mut p = Partitioner::new(None).expect("default partitioner");
        for (key, hash, parts) in KEY_VECTORS {
            assert_eq!(fnv1a(key.as_bytes()), *hash, "fnv of {key:?}");
            for (n, want) in NS.iter().zip(parts) {
                assert_eq!(hash_to_partition(*hash, *n), *want, "{key:?} n={n}");
                assert_eq!(
                    p.partition(&ev, Some(key.as_bytes()), *n),
                    Ok(*want),
                    "partitioner {key:?} n={n}"
                );
            }
        }
    }

    #[test]
    fn fields_hash_concatenates_and_hashes_ints_as_int64() {
        let cfg: PartitionConfig = toml::from_str("hash = { hash = [\"f1\", \"f2\"] }").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        let ev = crate::processors::testutil::map(serde_json::json!({"f1": "foo", "f2": "bar"}));
        assert_eq!(
            p.partition(&ev, None, 12),
            Ok(hash_to_partition(0xbf9cf968, 12))
        );
        let cfg: PartitionConfig = toml::from_str("hash = { hash = [\"n\"] }").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        let ev = crate::processors::testutil::map(serde_json::json!({"n": 42}));
        let mut h = Fnv1a::default();
        h.write(&42i64.to_le_bytes());
        assert_eq!(h.finish(), 0xeddb0ccf);
        assert_eq!(p.partition(&ev, None, 12), Ok(7));
    }

    #[test]
    fn missing_field_is_random_or_error() {
        let ev = crate::processors::testutil::map(serde_json::json!({"a": "x"}));
        let cfg: PartitionConfig =
            toml::from_str("hash = { hash = [\"nope\"], random = false }").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        assert!(p.partition(&ev, None, 3).is_err());
        let cfg: PartitionConfig = toml::from_str("hash = { hash = [\"nope\"] }").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        for _ in 0..50 {
            let got = p.partition(&ev, None, 3).unwrap();
            assert!((0..3).contains(&got));
        }
    }

    #[test]
    fn round_robin_cycles_and_random_groups() {
        let ev = crate::processors::testutil::line("x");
        let cfg: PartitionConfig = toml::from_str("round_robin = {}").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        let first = p.partition(&ev, None, 5).unwrap();
        for i in 1..20 {
            assert_eq!(p.partition(&ev, None, 5).unwrap(), (first + i) % 5);
        }
        let cfg: PartitionConfig = toml::from_str("random = { group_events = 4 }").unwrap();
        let mut p = Partitioner::new(Some(&cfg)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..25 {
            let g: Vec<i32> = (0..4)
                .map(|_| p.partition(&ev, None, 16).unwrap())
                .collect();
            assert!(
                g.iter().all(|x| *x == g[0]),
                "a group stays on one partition"
            );
            seen.insert(g[0]);
        }
        assert!(seen.len() > 3, "random spreads over partitions");
    }

    #[test]
    fn keyless_default_is_left_to_the_output() {
        let p = Partitioner::new(None).unwrap();
        assert!(p.keyless(None));
        assert!(!p.keyless(Some(b"k")));
        let cfg: PartitionConfig = toml::from_str("round_robin = {}").unwrap();
        assert!(!Partitioner::new(Some(&cfg)).unwrap().keyless(None));
    }

    #[test]
    fn sticky_takes_turns_among_live_partitions() {
        let mut s = Sticky::default();
        assert_eq!(s.next(&[]), None);
        let live = [0, 2, 5];
        let picks: Vec<i32> = (0..6).map(|_| s.next(&live).unwrap()).collect();
        // Every live partition once per round, in order from wherever the turn was.
        assert_eq!(picks[..3], picks[3..]);
        let mut round = picks[..3].to_vec();
        round.sort_unstable();
        assert_eq!(round, live);
        // A partition that lost its leader is left out from the next batch on.
        for _ in 0..4 {
            assert_ne!(s.next(&[0, 5]), Some(2));
        }
        assert_eq!(s.next(&[7]), Some(7));
    }

    #[test]
    fn too_many_partitioners() {
        let cfg: PartitionConfig = toml::from_str("random = {}\nround_robin = {}").unwrap();
        assert!(Partitioner::new(Some(&cfg)).is_err());
    }
}
