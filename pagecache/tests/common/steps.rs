//! The operations page-cache crash and fault tests issue, as a replayable list ([`Step`]), and
//! the prefix check of the durability contract ([`matching_prefix`]).

use std::collections::BTreeMap;

use logstore::io::SimRng;
use radix::Pid;

use super::Map;

/// Keys of the pages the steps write.
pub const KEYS: u64 = 40;

/// raw pid -> contents.
pub type Model = BTreeMap<u64, Map>;

pub fn pid(raw: u64) -> Pid {
    Pid::new(raw).expect("valid pid")
}

/// The base page an `alloc`/`replace` with this seed writes.
pub fn base(seed: u64) -> Map {
    let mut rng = SimRng::new(seed);
    let n = rng.below(24);
    (0..n).map(|_| (rng.below(KEYS), rng.next_u64())).collect()
}

/// One operation as the child prints it.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `alloc <seed>`; the pid follows on its own line once `allocate` returned.
    Alloc(u64, Option<u64>),
    Set(u64, u64, u64),
    Del(u64, u64),
    Replace(u64, u64),
    Free(u64),
}

impl Step {
    pub fn line(&self) -> String {
        match self {
            Step::Alloc(seed, _) => format!("alloc {seed}"),
            Step::Set(p, k, v) => format!("set {p} {k} {v}"),
            Step::Del(p, k) => format!("del {p} {k}"),
            Step::Replace(p, seed) => format!("replace {p} {seed}"),
            Step::Free(p) => format!("free {p}"),
        }
    }

    pub fn parse(line: &str) -> Option<Step> {
        let mut w = line.split(' ');
        let tag = w.next()?;
        let mut n = || w.next().and_then(|x| x.parse::<u64>().ok());
        Some(match tag {
            "alloc" => Step::Alloc(n()?, None),
            "set" => Step::Set(n()?, n()?, n()?),
            "del" => Step::Del(n()?, n()?),
            "replace" => Step::Replace(n()?, n()?),
            "free" => Step::Free(n()?),
            _ => return None,
        })
    }

    /// Applies a step whose pid is known.
    pub fn apply(&self, model: &mut Model) {
        match *self {
            Step::Alloc(seed, Some(p)) => {
                let before = model.insert(p, base(seed));
                assert!(before.is_none(), "pid {p} allocated while live");
            }
            Step::Alloc(_, None) => panic!("applying an allocation with no pid"),
            Step::Set(p, k, v) => {
                model.get_mut(&p).expect("set on a live page").insert(k, v);
            }
            Step::Del(p, k) => {
                model.get_mut(&p).expect("del on a live page").remove(&k);
            }
            Step::Replace(p, seed) => *model.get_mut(&p).expect("live page") = base(seed),
            Step::Free(p) => {
                model.remove(&p).expect("free of a live page");
            }
        }
    }
}

/// The prefix length `got` equals the model after, at least `acked`; panics if none.
pub fn matching_prefix(
    model: &Model,
    steps: &[Step],
    acked: usize,
    got: &Model,
) -> Result<usize, String> {
    let mut state = model.clone();
    for step in &steps[..acked] {
        step.apply(&mut state);
    }
    for n in acked..=steps.len() {
        if &state == got {
            return Ok(n);
        }
        match steps.get(n) {
            Some(Step::Alloc(seed, None)) => {
                // Killed before the pid was printed: the page may exist at a pid the model does
                // not know (fresh or reused), holding its base.
                assert_eq!(n + 1, steps.len(), "only the last step lacks its pid");
                let extra: Vec<_> = got.keys().filter(|p| !state.contains_key(p)).collect();
                if let [&p] = extra[..] {
                    let mut with = state.clone();
                    with.insert(p, base(*seed));
                    if &with == got {
                        return Ok(n + 1);
                    }
                }
            }
            Some(step) => step.apply(&mut state),
            None => {}
        }
    }
    let diff: std::collections::BTreeSet<_> = got
        .keys()
        .chain(state.keys())
        .filter(|p| got.get(p) != state.get(p))
        .collect();
    Err(format!(
        "recovered state is no prefix of the {} steps with {} acknowledged (pages differing \
         from the longest prefix: {diff:?})",
        steps.len(),
        acked
    ))
}
