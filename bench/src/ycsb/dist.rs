//! YCSB's key choosers: uniform, and scrambled zipfian (Gray et al., "Quickly generating
//! billion-record synthetic databases", as in YCSB's `ZipfianGenerator` with the default
//! constant 0.99; ranks are hashed so the popular keys are spread over the key space).

use rand::Rng;

/// YCSB's default zipfian constant.
pub const THETA: f64 = 0.99;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Distribution {
    Uniform,
    Zipfian,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        }
    }
}

/// Chooses record numbers in `0..n`.
#[derive(Clone, Debug)]
pub struct Chooser {
    n: u64,
    zipf: Option<Zipf>,
}

#[derive(Clone, Debug)]
struct Zipf {
    zeta_n: f64,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// FNV-1a of the rank: YCSB's scrambling hash.
pub fn fnv64(mut value: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..8 {
        hash ^= value & 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        value >>= 8;
    }
    hash
}

impl Chooser {
    pub fn new(distribution: Distribution, n: u64) -> Self {
        assert!(n >= 2, "a key chooser needs at least two records");
        let zipf = (distribution == Distribution::Zipfian).then(|| {
            let zeta_n = zeta(n, THETA);
            let zeta_2 = zeta(2, THETA);
            Zipf {
                zeta_n,
                alpha: 1.0 / (1.0 - THETA),
                eta: (1.0 - (2.0 / n as f64).powf(1.0 - THETA)) / (1.0 - zeta_2 / zeta_n),
                half_pow_theta: 0.5f64.powf(THETA),
            }
        });
        Self { n, zipf }
    }

    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        let Some(z) = &self.zipf else {
            return rng.random_range(0..self.n);
        };
        let u: f64 = rng.random();
        let uz = u * z.zeta_n;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + z.half_pow_theta {
            1
        } else {
            let r = self.n as f64 * (z.eta * u - z.eta + 1.0).powf(z.alpha);
            (r as u64).min(self.n - 1)
        };
        fnv64(rank) % self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let n = 10_000;
        let chooser = Chooser::new(Distribution::Zipfian, n);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = vec![0u32; n as usize];
        for _ in 0..100_000 {
            counts[chooser.next(&mut rng) as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_ten: u32 = counts[..10].iter().sum();
        // Under theta 0.99 the ten hottest of 10k records draw about a third of the accesses;
        // uniform would give them 0.1%.
        assert!(top_ten > 20_000, "top ten drew {top_ten} of 100000");
    }

    #[test]
    fn uniform_covers_the_range() {
        let chooser = Chooser::new(Distribution::Uniform, 4);
        let mut rng = SmallRng::seed_from_u64(2);
        let mut seen = [false; 4];
        for _ in 0..100 {
            seen[chooser.next(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
