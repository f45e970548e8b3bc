//! Random choices made in the hot loop: which key a request touches and which
//! operation it is.
//!
//! Everything here is allocation-free once built, because a sample is drawn
//! for every request. The generator is SplitMix64: it is not cryptographic,
//! but it passes the usual statistical batteries, takes a few nanoseconds per
//! draw and is seeded per thread from `--seed`, so a run's key sequence can be
//! repeated.
//!
//! Keys are drawn uniformly or from a Zipf distribution with exponent `theta`
//! in (0, 1), using the method of Gray et al., "Quickly Generating
//! Billion-Record Synthetic Databases" (SIGMOD 1994), which is also what YCSB
//! uses. Its setup sums `1/i^theta` over the key count once; after that every
//! draw costs one `powf`. Rank 0 is the hottest key: the loadgen maps rank `r`
//! to key `r`, so with the default 100 keys per directory the hot keys share
//! the first directory, which is the worst case for a server that locks or
//! shards per parent.
//!
//! Operations are drawn from a mix of integer weights (`get=90,set=10`) with
//! a cumulative table, one modulo and a short scan of at most seven entries.

use std::fmt;

/// SplitMix64 (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A float uniform in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An integer uniform in [0, bound), by Lemire's multiply-shift (the
    /// bias is below 2^-32 for any bound a run uses).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

/// How keys are chosen, as given by `--dist`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Uniform,
    /// Zipf with this exponent, strictly between 0 and 1.
    Zipf(f64),
}

impl fmt::Display for Distribution {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => write!(formatter, "uniform"),
            Distribution::Zipf(theta) => write!(formatter, "zipf:{theta}"),
        }
    }
}

/// Parses `uniform` or `zipf:THETA` (or `zipf`, meaning 0.99).
pub fn parse_distribution(text: &str) -> Result<Distribution, String> {
    let text = text.trim();
    if text == "uniform" {
        return Ok(Distribution::Uniform);
    }
    let theta_text = match text.strip_prefix("zipf") {
        Some("") => "0.99",
        Some(rest) => rest.strip_prefix(':').ok_or_else(|| format!("expected zipf:THETA, got {text:?}"))?,
        None => return Err(format!("expected uniform or zipf:THETA, got {text:?}")),
    };
    let theta: f64 = theta_text.parse().map_err(|_| format!("zipf exponent {theta_text:?} is not a number"))?;
    if !(theta > 0.0 && theta < 1.0) {
        return Err(format!("zipf exponent must be strictly between 0 and 1, got {theta}"));
    }
    Ok(Distribution::Zipf(theta))
}

/// Draws key indexes in [0, key_count).
#[derive(Debug, Clone)]
pub struct KeySampler {
    key_count: u64,
    zipf: Option<ZipfConstants>,
}

#[derive(Debug, Clone)]
struct ZipfConstants {
    #[cfg_attr(not(test), allow(dead_code))]
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
    /// 1 + 0.5^theta: below this, scaled draws map to rank 1.
    rank_one_bound: f64,
}

/// The generalised harmonic number: the sum of 1/i^theta for i in 1..=count.
pub fn zeta(count: u64, theta: f64) -> f64 {
    (1..=count).map(|rank| 1.0 / (rank as f64).powf(theta)).sum()
}

impl KeySampler {
    pub fn new(key_count: u64, distribution: Distribution) -> KeySampler {
        assert!(key_count > 0, "the key count must be positive");
        let zipf = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipf(theta) => {
                let zeta_n = zeta(key_count, theta);
                let zeta_two = zeta(2.min(key_count), theta);
                let eta = (1.0 - (2.0 / key_count as f64).powf(1.0 - theta)) / (1.0 - zeta_two / zeta_n);
                Some(ZipfConstants {
                    theta,
                    alpha: 1.0 / (1.0 - theta),
                    zeta_n,
                    eta,
                    rank_one_bound: 1.0 + 0.5f64.powf(theta),
                })
            }
        };
        KeySampler { key_count, zipf }
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let Some(zipf) = &self.zipf else {
            return rng.below(self.key_count);
        };
        let uniform = rng.next_f64();
        let scaled = uniform * zipf.zeta_n;
        if scaled < 1.0 {
            return 0;
        }
        if scaled < zipf.rank_one_bound || self.key_count <= 2 {
            return 1.min(self.key_count - 1);
        }
        let rank = (self.key_count as f64 * (zipf.eta * uniform - zipf.eta + 1.0).powf(zipf.alpha)) as u64;
        rank.min(self.key_count - 1)
    }

    /// The exact probability of `rank` under the Zipf law this sampler
    /// approximates (uniform: 1/n), to test the sampler against.
    #[cfg(test)]
    pub fn probability(&self, rank: u64) -> f64 {
        match &self.zipf {
            None => 1.0 / self.key_count as f64,
            Some(zipf) => 1.0 / ((rank + 1) as f64).powf(zipf.theta) / zipf.zeta_n,
        }
    }
}

/// The operations of the mix workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Get,
    Set,
    Exists,
    Children,
    Create,
    Delete,
    Multi,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Get,
        Operation::Set,
        Operation::Exists,
        Operation::Children,
        Operation::Create,
        Operation::Delete,
        Operation::Multi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Exists => "exists",
            Operation::Children => "children",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Multi => "multi",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn from_name(name: &str) -> Option<Operation> {
        Some(match name {
            "get" | "getData" => Operation::Get,
            "set" | "setData" => Operation::Set,
            "exists" => Operation::Exists,
            "children" | "getChildren" | "ls" => Operation::Children,
            "create" => Operation::Create,
            "delete" => Operation::Delete,
            "multi" => Operation::Multi,
            _ => return None,
        })
    }
}

/// A weighted choice of operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// (operation, weight) pairs in the order given, weights positive.
    pub weights: Vec<(Operation, u32)>,
    cumulative: Vec<(u64, Operation)>,
    total_weight: u64,
}

impl Mix {
    pub fn new(weights: Vec<(Operation, u32)>) -> Result<Mix, String> {
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total_weight = 0u64;
        for &(operation, weight) in &weights {
            if weight == 0 {
                continue;
            }
            total_weight += weight as u64;
            cumulative.push((total_weight, operation));
        }
        if total_weight == 0 {
            return Err("the mix needs at least one operation with a positive weight".into());
        }
        Ok(Mix { weights, cumulative, total_weight })
    }

    pub fn sample(&self, rng: &mut Rng) -> Operation {
        let draw = rng.below(self.total_weight);
        for &(bound, operation) in &self.cumulative {
            if draw < bound {
                return operation;
            }
        }
        self.cumulative[self.cumulative.len() - 1].1
    }

    #[cfg(test)]
    pub fn contains(&self, operation: Operation) -> bool {
        self.cumulative.iter().any(|&(_, entry)| entry == operation)
    }

    /// The fraction of requests that are `operation`.
    #[cfg(test)]
    pub fn share(&self, operation: Operation) -> f64 {
        let weight: u64 =
            self.weights.iter().filter(|(entry, _)| *entry == operation).map(|(_, weight)| *weight as u64).sum();
        weight as f64 / self.total_weight as f64
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, (operation, weight)) in self.weights.iter().enumerate() {
            if position > 0 {
                write!(formatter, ",")?;
            }
            write!(formatter, "{}={weight}", operation.name())?;
        }
        Ok(())
    }
}

/// Parses `get=90,set=10`. A name given twice is an error.
pub fn parse_mix(text: &str) -> Result<Mix, String> {
    let mut weights: Vec<(Operation, u32)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (name, weight_text) = part.split_once('=').ok_or_else(|| format!("expected OP=WEIGHT, got {part:?}"))?;
        let operation = Operation::from_name(name.trim()).ok_or_else(|| {
            format!("unknown operation {name:?} (known: get, set, exists, children, create, delete, multi)")
        })?;
        let weight: u32 = weight_text
            .trim()
            .parse()
            .map_err(|_| format!("weight {weight_text:?} of {name} is not a whole number"))?;
        if weights.iter().any(|(entry, _)| *entry == operation) {
            return Err(format!("operation {name} appears twice in the mix"));
        }
        weights.push((operation, weight));
    }
    Mix::new(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_covers_the_range_evenly() {
        let sampler = KeySampler::new(10, Distribution::Uniform);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn zipf_matches_the_law_at_the_head() {
        let key_count = 1000;
        let sampler = KeySampler::new(key_count, Distribution::Zipf(0.99));
        let mut rng = Rng::new(7);
        let draws = 400_000;
        let mut counts = vec![0u32; key_count as usize];
        for _ in 0..draws {
            let key = sampler.sample(&mut rng);
            assert!(key < key_count);
            counts[key as usize] += 1;
        }
        // Gray's method is exact for ranks 0 and 1 and an approximation
        // past them, so the head is checked tightly and the tail loosely.
        for rank in 0..2 {
            let expected = sampler.probability(rank) * draws as f64;
            let observed = counts[rank as usize] as f64;
            assert!(
                (observed - expected).abs() < 0.03 * expected,
                "rank {rank}: observed {observed}, expected {expected}"
            );
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[5] && counts[5] > counts[500]);
        let head: u32 = counts[..10].iter().sum();
        let expected_head: f64 = (0..10).map(|rank| sampler.probability(rank)).sum::<f64>();
        let observed_head = head as f64 / draws as f64;
        assert!(
            (observed_head - expected_head).abs() < 0.05 * expected_head,
            "head share {observed_head} vs {expected_head}"
        );
    }

    #[test]
    fn zipf_handles_tiny_key_counts() {
        for key_count in 1..4 {
            let sampler = KeySampler::new(key_count, Distribution::Zipf(0.5));
            let mut rng = Rng::new(3);
            for _ in 0..10_000 {
                assert!(sampler.sample(&mut rng) < key_count);
            }
        }
    }

    #[test]
    fn zeta_is_the_harmonic_number() {
        assert!((zeta(3, 1.0) - (1.0 + 0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert!((zeta(4, 0.0) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn distribution_parsing() {
        assert_eq!(parse_distribution("uniform"), Ok(Distribution::Uniform));
        assert_eq!(parse_distribution("zipf:0.99"), Ok(Distribution::Zipf(0.99)));
        assert_eq!(parse_distribution("zipf"), Ok(Distribution::Zipf(0.99)));
        assert!(parse_distribution("zipf:1.2").is_err());
        assert!(parse_distribution("zipf:x").is_err());
        assert!(parse_distribution("normal").is_err());
    }

    #[test]
    fn mix_parsing_and_sampling() {
        let mix = parse_mix("get=90, set=10").unwrap();
        assert_eq!(mix.weights, vec![(Operation::Get, 90), (Operation::Set, 10)]);
        assert_eq!(mix.to_string(), "get=90,set=10");
        let mut rng = Rng::new(5);
        let sets = (0..100_000).filter(|_| mix.sample(&mut rng) == Operation::Set).count();
        assert!((9_000..11_000).contains(&sets), "{sets}");
        assert!(parse_mix("get=1,get=2").is_err());
        assert!(parse_mix("get=0").is_err());
        assert!(parse_mix("frob=1").is_err());
        assert!(parse_mix("get").is_err());
        let all = parse_mix("get=1,set=1,exists=1,children=1,create=1,delete=1,multi=1").unwrap();
        assert!(Operation::ALL.iter().all(|&operation| all.contains(operation)));
        assert!((all.share(Operation::Multi) - 1.0 / 7.0).abs() < 1e-12);
    }
}
