//! Reads an `strace -f -y` log into completed file-system calls, and checks the durability
//! discipline at every acknowledgement the traced process printed.
//!
//! The rule, at each acknowledgement (a `write` to fd 1 carrying [`ACK`]):
//! - every file under the database directory whose data or size changed (a write, `ftruncate`,
//!   `fallocate`, an `O_TRUNC` open) in a call that completed before the acknowledgement was
//!   written has since been `fsync`ed or `fdatasync`ed by a call that started after that change
//!   completed and finished before the acknowledgement (`sync_file_range` does not count);
//! - every directory under (or being) the database directory whose entries changed (a file
//!   created, a rename into or out of it, an unlink, a `mkdir`) has been `fsync`ed the same way.
//!
//! A file renamed carries its state to its new name; an unlinked file needs no sync.
//! Calls are ordered by the line on which strace printed their completion (an `<unfinished
//! ...>` call starts on an earlier line), acknowledgements by the line where they start.
//! Failed calls (`= -1 ...`) are ignored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What the traced process writes to stdout after each acknowledged durability call.
pub const ACK: &str = "BWTREE-ACK";

/// The system calls to trace (`strace -e trace=...`).
pub const TRACED: &str = "open,openat,creat,write,pwrite64,writev,pwritev,pwritev2,fsync,\
fdatasync,sync_file_range,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,ftruncate,\
fallocate";

/// One completed system call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The line of the trace where it started and where it completed (0-based).
    pub start: usize,
    pub end: usize,
    pub name: String,
    /// The arguments as printed (an unfinished call's two halves joined).
    pub args: String,
    /// The return value as printed, e.g. `4096` or `5</db/log.dat>`.
    pub ret: String,
}

/// Parses the trace. Lines that are not system calls (signals, exits) are skipped.
pub fn parse(trace: &str) -> Vec<Call> {
    let mut open: HashMap<&str, (usize, String, String)> = HashMap::new();
    let mut calls = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            if let Some((name, args)) = head.split_once('(') {
                open.insert(pid, (i, name.to_string(), args.to_string()));
            }
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if let Some((start, name, head)) = open.remove(pid) {
                push_completed(&mut calls, start, i, name, format!("{head}{tail}"));
            }
        } else if let Some((name, args)) = rest.split_once('(') {
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                push_completed(&mut calls, i, i, name.to_string(), args.to_string());
            }
        }
    }
    calls
}

fn push_completed(calls: &mut Vec<Call>, start: usize, end: usize, name: String, all: String) {
    let Some((args, ret)) = all.rsplit_once(" = ") else {
        return; // e.g. a call that never returned because the process exited
    };
    if ret.starts_with('-') || ret.starts_with('?') {
        return;
    }
    calls.push(Call {
        start,
        end,
        name,
        args: args.trim_end_matches(')').to_string(),
        ret: ret.to_string(),
    });
}

/// The path strace's `-y` printed for the fd in front of `s` (`5</db/log.dat>...`).
fn fd_path(s: &str) -> Option<PathBuf> {
    let open = s.find('<')?;
    if !s[..open].chars().all(|c| c.is_ascii_digit()) || open == 0 {
        return None;
    }
    let rest = &s[open + 1..];
    let close = rest.find(">,").or_else(|| rest.rfind('>'))?;
    Some(PathBuf::from(&rest[..close]))
}

/// The quoted strings among `args`, unescaped only as far as paths need.
fn quoted(args: &str) -> Vec<String> {
    let (mut out, mut cur, mut inside, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in args.chars() {
        match (inside, escaped, c) {
            (true, true, _) => {
                cur.push(c);
                escaped = false;
            }
            (true, false, '\\') => escaped = true,
            (true, false, '"') => {
                out.push(std::mem::take(&mut cur));
                inside = false;
            }
            (true, false, _) => cur.push(c),
            (false, _, '"') => inside = true,
            _ => {}
        }
    }
    out
}

/// The `n`th path argument of a call: absolute as printed, or relative to a `-y` dir fd.
fn path_arg(args: &str, n: usize) -> PathBuf {
    let p = PathBuf::from(&quoted(args)[n]);
    assert!(p.is_absolute(), "relative path in a traced call: {args}");
    p
}

/// What one call did to durability state.
enum Effect {
    Changed(PathBuf),
    Synced(PathBuf),
    Created(PathBuf),
    Renamed(PathBuf, PathBuf),
    Removed(PathBuf),
    Ack,
    Nothing,
}

fn effect(c: &Call) -> Effect {
    let fd = || fd_path(&c.args);
    match c.name.as_str() {
        "write" | "writev" if c.args.starts_with("1<") && c.args.contains(ACK) => Effect::Ack,
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "ftruncate" | "fallocate" => {
            fd().map_or(Effect::Nothing, Effect::Changed)
        }
        "fsync" | "fdatasync" => fd().map_or(Effect::Nothing, Effect::Synced),
        "open" | "openat" | "creat" => {
            let Some(path) = fd_path(&c.ret) else {
                return Effect::Nothing;
            };
            match (
                c.args.contains("O_CREAT") || c.name == "creat",
                c.args.contains("O_TRUNC"),
            ) {
                (true, _) => Effect::Created(path),
                (false, true) => Effect::Changed(path),
                _ => Effect::Nothing,
            }
        }
        "mkdir" | "mkdirat" => Effect::Created(path_arg(&c.args, 0)),
        "rename" | "renameat" | "renameat2" => {
            Effect::Renamed(path_arg(&c.args, 0), path_arg(&c.args, 1))
        }
        "unlink" | "unlinkat" => Effect::Removed(path_arg(&c.args, 0)),
        _ => Effect::Nothing,
    }
}

/// The durability state: for each file or directory, the trace line where its last unsynced
/// change completed.
#[derive(Default)]
struct Dirty {
    files: BTreeMap<PathBuf, usize>,
    dirs: BTreeMap<PathBuf, usize>,
    existing: HashSet<PathBuf>,
}

impl Dirty {
    fn dir_changed(&mut self, entry: &Path, at: usize) {
        let parent = entry.parent().expect("an entry has a parent").to_path_buf();
        self.dirs.insert(parent, at);
    }

    fn apply(&mut self, c: &Call, e: Effect) {
        match e {
            Effect::Changed(p) => drop(self.files.insert(p, c.end)),
            // A sync covers the changes that completed before it started.
            Effect::Synced(p) => {
                for map in [&mut self.files, &mut self.dirs] {
                    if map.get(&p).is_some_and(|&changed| changed < c.start) {
                        map.remove(&p);
                    }
                }
            }
            Effect::Created(p) => {
                // Opening an existing file with O_CREAT changes no directory entry.
                if self.existing.insert(p.clone()) {
                    self.dir_changed(&p, c.end);
                }
            }
            Effect::Renamed(from, to) => {
                self.existing.remove(&from);
                self.existing.insert(to.clone());
                if let Some(changed) = self.files.remove(&from) {
                    self.files.insert(to.clone(), changed);
                }
                self.dir_changed(&from, c.end);
                self.dir_changed(&to, c.end);
            }
            Effect::Removed(p) => {
                self.existing.remove(&p);
                self.files.remove(&p);
                self.dir_changed(&p, c.end);
            }
            Effect::Ack | Effect::Nothing => {}
        }
    }

    /// What is not durable at an acknowledgement starting on line `ack`, under `root`.
    fn unsynced(&self, root: &Path, ack: usize) -> Vec<String> {
        let mut out = Vec::new();
        let under = |p: &Path| p.starts_with(root);
        for (kind, map) in [("file data", &self.files), ("directory", &self.dirs)] {
            for (p, &line) in map.iter().filter(|(p, _)| under(p)) {
                if line < ack {
                    out.push(format!(
                        "{kind} {} changed on trace line {}",
                        p.display(),
                        line + 1
                    ));
                }
            }
        }
        out
    }
}

/// Checks the rule at every acknowledgement; returns how many there were, or every violation.
pub fn check(calls: &[Call], root: &Path) -> Result<usize, Vec<String>> {
    // An acknowledgement is checked where it starts, against the calls completed before.
    let mut order: Vec<(usize, &Call, Effect)> = calls
        .iter()
        .map(|c| match effect(c) {
            Effect::Ack => (c.start, c, Effect::Ack),
            e => (c.end, c, e),
        })
        .collect();
    order.sort_by_key(|(at, _, _)| *at);
    let mut dirty = Dirty::default();
    let (mut acks, mut violations) = (0, Vec::new());
    for (_, c, e) in order {
        match e {
            Effect::Ack => {
                acks += 1;
                for v in dirty.unsynced(root, c.start) {
                    violations.push(format!(
                        "at acknowledgement #{acks} (line {}): {v}",
                        c.start + 1
                    ));
                }
            }
            e => dirty.apply(c, e),
        }
    }
    if violations.is_empty() {
        Ok(acks)
    } else {
        Err(violations)
    }
}
