//! Partition choice as the Java client makes it: murmur2 of the key bytes, masked positive,
//! modulo the partition count; keyless records stick to one partition until a batch fills
//! (KIP-480's sticky partitioning), then move on.

/// Kafka's murmur2 (seed 0x9747b28c), as `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `count` partitions: `(murmur2(key) & 0x7fffffff) % count`.
pub fn partition_for_key(key: &[u8], count: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % count.max(1)
}

/// Sticky choice for keyless records: one partition per topic until the producer reports that
/// its batch was sent, then another (never the same one twice in a row when there are several).
#[derive(Debug, Default)]
pub struct Sticky {
    current: std::collections::HashMap<String, i32>,
    seed: u64,
}

impl Sticky {
    /// The partition for a keyless record of `topic`.
    pub fn partition(&mut self, topic: &str, count: i32) -> i32 {
        if let Some(p) = self.current.get(topic) {
            if *p < count {
                return *p;
            }
        }
        let p = self.next(count, None);
        self.current.insert(topic.to_string(), p);
        p
    }

    /// A batch of `topic` on `partition` was closed: stick to another partition from now on.
    pub fn batch_done(&mut self, topic: &str, partition: i32, count: i32) {
        if self.current.get(topic) == Some(&partition) {
            let p = self.next(count, Some(partition));
            self.current.insert(topic.to_string(), p);
        }
    }

    fn next(&mut self, count: i32, not: Option<i32>) -> i32 {
        // xorshift; the spread matters, not the quality.
        if self.seed == 0 {
            self.seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1;
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let count = count.max(1);
        let mut p = (self.seed % count as u64) as i32;
        if count > 1 && Some(p) == not {
            p = (p + 1) % count;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
    }

    #[test]
    fn sticky_moves_on_after_a_batch() {
        let mut s = Sticky::default();
        let p = s.partition("t", 6);
        assert_eq!(s.partition("t", 6), p);
        s.batch_done("t", p, 6);
        assert_ne!(s.partition("t", 6), p);
        let mut one = Sticky::default();
        assert_eq!(one.partition("t", 1), 0);
        one.batch_done("t", 0, 1);
        assert_eq!(one.partition("t", 1), 0);
    }
}
