//! One child's life: spawn `bench crash-child`, listen to its lines, kill it with SIGKILL at
//! the planned moment, and return what it said.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use logstore::io::SimRng;

use super::child::{unhex, ChildSpec};
use super::workload::State;
use crate::engine::Result;

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
pub enum KillPlan {
    /// This long after the spawn: while it execs, opens and recovers.
    InOpen(Duration),
    /// This long after it reported its recovered state (mid-write, mid-flush, mid-checkpoint,
    /// mid-cleaning: the background threads run all the time).
    AfterReady(Duration),
    /// As soon as this many acknowledgements arrived (right after a flush returned).
    AtAck(u64),
}

impl KillPlan {
    /// `open` is how long children take to report their state lately (so kills in the open
    /// land in it, however fast the build).
    pub fn draw(rng: &mut SimRng, open: Duration) -> KillPlan {
        let ms =
            |lo: u64, hi: u64, rng: &mut SimRng| Duration::from_millis(lo + rng.below(hi - lo));
        match rng.below(100) {
            0..10 => KillPlan::InOpen(ms(0, open.as_millis() as u64 + 1, rng)),
            10..60 => KillPlan::AfterReady(ms(0, 60, rng)),
            60..85 => KillPlan::AfterReady(ms(60, 300, rng)),
            _ => KillPlan::AtAck(1 + rng.below(8)),
        }
    }
}

/// What the reader thread tells the killer as it happens.
enum Event {
    Ready,
    Ack,
}

/// Counters a child reported with its last acknowledgement (since its open).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildCounters {
    pub splits: u64,
    pub merges: u64,
    pub evictions: u64,
    pub page_ins: u64,
    pub checkpoints: u64,
    pub bytes_relocated: u64,
}

impl std::ops::AddAssign for ChildCounters {
    fn add_assign(&mut self, o: ChildCounters) {
        self.splits += o.splits;
        self.merges += o.merges;
        self.evictions += o.evictions;
        self.page_ins += o.page_ins;
        self.checkpoints += o.checkpoints;
        self.bytes_relocated += o.bytes_relocated;
    }
}

/// What the parent heard from one child.
#[derive(Debug, Default)]
pub struct Heard {
    /// The state it recovered, if it finished reporting it before the kill.
    pub recovered: Option<State>,
    /// Per lane: the writes acknowledged by its last `ack` line.
    pub acked: Vec<u64>,
    pub counters: ChildCounters,
    /// Its error, if it stopped on one.
    pub bad: Option<String>,
    /// How long after the spawn it reported its state.
    pub ready_after: Option<Duration>,
}

impl Heard {
    fn hear(&mut self, line: &str, partial: &mut State) -> Result<()> {
        let fields: Vec<&str> = line.split(' ').collect();
        let num =
            |i: usize| -> Result<u64> { Ok(fields.get(i).ok_or("short line")?.parse::<u64>()?) };
        match fields[0] {
            "kv" => {
                let tree = num(1)? as usize;
                let key = fields.get(2).and_then(|f| unhex(f)).ok_or("bad key")?;
                let value = fields.get(3).and_then(|f| unhex(f)).ok_or("bad value")?;
                partial.get_mut(tree).ok_or("bad tree")?.insert(key, value);
            }
            "ready" => self.recovered = Some(std::mem::take(partial)),
            "ack" => {
                let lane = num(1)? as usize;
                if self.acked.len() <= lane {
                    self.acked.resize(lane + 1, 0);
                }
                let acked = num(2)?;
                if acked <= self.acked[lane] {
                    return Err(format!("ack {acked} after ack {}", self.acked[lane]).into());
                }
                self.acked[lane] = acked;
                self.counters = ChildCounters {
                    splits: num(3)?,
                    merges: num(4)?,
                    evictions: num(5)?,
                    page_ins: num(6)?,
                    checkpoints: num(7)?,
                    bytes_relocated: num(8)?,
                };
            }
            "bad" => self.bad = Some(line.get(4..).unwrap_or_default().to_string()),
            _ => return Err("unknown line".into()),
        }
        Ok(())
    }
}

/// Runs one child on `spec` until `plan` says kill; its stderr goes to `stderr_file`.
pub fn run_child(spec: &ChildSpec, plan: KillPlan, stderr_file: &Path) -> Result<Heard> {
    let spawned = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .arg("crash-child")
        .arg(serde_json::to_string(spec)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_file)?)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (events, events_heard) = mpsc::channel();
    let reader = std::thread::spawn(move || -> Result<Heard> {
        let mut heard = Heard::default();
        let mut partial = State::default();
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // A last line without its newline was cut by the kill (a write longer than the pipe's
        // atomic size can be): what it announced was not done yet, so it is dropped.
        while stdout.read_line(&mut line)? > 0 && line.ends_with('\n') {
            let text = line.trim_end();
            heard
                .hear(text, &mut partial)
                .map_err(|e| format!("child line {text:?}: {e}"))?;
            let event = match text.split(' ').next() {
                Some("ready") => {
                    heard.ready_after = Some(spawned.elapsed());
                    Some(Event::Ready)
                }
                Some("ack") => Some(Event::Ack),
                _ => None,
            };
            // The parent may have stopped listening after the kill.
            let _ = event.map(|e| events.send(e));
            line.clear();
        }
        Ok(heard)
    });
    wait_for(plan, &events_heard);
    let exited_by_itself = child.try_wait()?;
    child.kill()?; // SIGKILL
    child.wait()?;
    let heard = reader.join().map_err(|_| "the reader thread panicked")??;
    if let Some(bad) = &heard.bad {
        return Err(format!("the child failed: {bad}").into());
    }
    if let Some(status) = exited_by_itself {
        let stderr = std::fs::read_to_string(stderr_file).unwrap_or_default();
        return Err(format!(
            "the child exited by itself ({status}): {}\n{stderr}",
            heard.bad.as_deref().unwrap_or("no message")
        )
        .into());
    }
    Ok(heard)
}

/// Returns when the plan's moment came. A child that stalls is killed anyway, after at most
/// [`STALL`] of silence (a stall shows as few acknowledgements).
fn wait_for(plan: KillPlan, events: &mpsc::Receiver<Event>) {
    let started = Instant::now();
    let mut ready_at = None;
    let mut acks = 0;
    loop {
        let wake = match (plan, ready_at) {
            (KillPlan::InOpen(d), _) => started + d,
            (KillPlan::AfterReady(d), Some(ready)) => ready + d,
            (KillPlan::AfterReady(_) | KillPlan::AtAck(_), _) => Instant::now() + STALL,
        };
        match events.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(Event::Ready) => ready_at = Some(Instant::now()),
            Ok(Event::Ack) => acks += 1,
            // The moment came, or the child stopped talking.
            Err(_) => return,
        }
        if matches!(plan, KillPlan::AtAck(n) if acks >= n) {
            return;
        }
    }
}

/// The longest silence the killer waits through.
const STALL: Duration = Duration::from_secs(2);
