//! Next-token choice: greedy at temperature 0, else temperature + nucleus (top_p)
//! sampling from a seeded generator (same seed, same request, same tokens).

/// SplitMix64: tiny, seedable, good enough for sampling (not for secrets). Hand-written
/// (8 lines) rather than pulling `rand` into every instance.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Index of the largest logit (the first on ties, as numpy's argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

pub struct Sampler {
    pub temperature: f32,
    pub top_p: f32,
    pub rng: Rng,
}

impl Sampler {
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = self.temperature as f64;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut probs: Vec<(f64, u32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (((*l as f64 - max) / t).exp(), i as u32))
            .collect();
        let total: f64 = probs.iter().map(|p| p.0).sum();
        if !(total.is_finite() && total > 0.0) {
            return argmax(logits);
        }
        if self.top_p < 1.0 {
            // Nucleus: the most likely tokens whose mass reaches top_p.
            probs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let want = self.top_p as f64 * total;
            let mut acc = 0.0;
            let mut keep = 0;
            for p in &probs {
                acc += p.0;
                keep += 1;
                if acc >= want {
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let mass: f64 = probs.iter().map(|p| p.0).sum();
        let mut r = self.rng.next_f64() * mass;
        for p in &probs {
            r -= p.0;
            if r < 0.0 {
                return p.1;
            }
        }
        probs.last().map(|p| p.1).unwrap_or(0)
    }
}

/// `ln softmax(logits)[id]` and the `k` most likely (id, logprob), for `logprobs`.
pub fn logprobs(logits: &[f32], id: u32, k: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|l| (*l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let lp = |i: u32| (logits[i as usize] as f64 - lse) as f32;
    let mut top = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |a, b| {
            logits[*b as usize].total_cmp(&logits[*a as usize])
        });
        idx.truncate(k);
        idx.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        top = idx.into_iter().map(|i| (i, lp(i))).collect();
    }
    (lp(id), top)
}
