//! The simulator's file contents: a durable image, a volatile image, and the unsynced changes
//! between them, plus the rule for what power loss makes of those changes.
//!
//! Invariant: `volatile == durable` with every `pending` change applied in order. A successful
//! sync applies `pending` to `durable` and clears it. On a crash (or a failed sync) each pending
//! change, in order or (with `reorder`) in a random order, is independently:
//! - dropped;
//! - kept whole;
//! - or (with `tear`) torn: the write is cut at 512-byte sector boundaries of the *file offset*
//!   and each piece is kept or dropped independently, as a disk that writes sectors atomically
//!   but in any order would leave it. `set_len` changes are never torn, only kept or dropped.
//!
//! With neither `keep_unsynced_writes` nor the other knobs, a crash simply drops everything
//! unsynced: the harshest deterministic outcome.

use super::CrashMode;
use crate::io::rng::SimRng;

/// The atomic unit of a simulated disk write.
pub const SECTOR_SIZE: u64 = 512;

/// One change since the file's last successful sync.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// `data` written at `offset`.
    Write { offset: u64, data: Vec<u8> },
    /// Truncated or zero-extended to this length.
    SetLen(u64),
}

impl Pending {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            Pending::Write { offset, data } => write_into(image, *offset, data),
            Pending::SetLen(len) => image.resize(to_usize(*len), 0),
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("simulated file larger than the address space")
}

/// Writes `data` at `offset`, zero-filling any gap past the end.
fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// One simulated file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    pending: Vec<Pending>,
}

impl Inode {
    /// What reads see.
    pub(crate) fn volatile(&self) -> &[u8] {
        &self.volatile
    }

    /// What a crash that drops every unsynced change would leave.
    #[cfg(test)]
    pub(crate) fn durable(&self) -> &[u8] {
        &self.durable
    }

    /// Whether there are changes since the last successful sync.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records and applies one change to the volatile image.
    pub(crate) fn change(&mut self, change: Pending) {
        change.apply(&mut self.volatile);
        self.pending.push(change);
    }

    /// A successful sync: everything pending becomes durable.
    pub(crate) fn sync(&mut self) {
        for change in self.pending.drain(..) {
            change.apply(&mut self.durable);
        }
        debug_assert_eq!(
            self.durable, self.volatile,
            "sync must make the images equal"
        );
    }

    /// Power loss (or a failed sync): resolves pending changes per `mode`, then the volatile
    /// image restarts from the durable one.
    pub(crate) fn crash(&mut self, mode: CrashMode, rng: &mut SimRng) {
        let mut order: Vec<usize> = (0..self.pending.len()).collect();
        if mode.reorder {
            rng.shuffle(&mut order);
        }
        for i in order {
            if mode.keep_unsynced_writes {
                resolve_one(&mut self.durable, &self.pending[i], mode.tear, rng);
            }
        }
        self.pending.clear();
        self.volatile = self.durable.clone();
    }
}

/// Drops, keeps or tears one pending change into `durable`.
fn resolve_one(durable: &mut Vec<u8>, change: &Pending, tear: bool, rng: &mut SimRng) {
    let outcomes = if tear { 3 } else { 2 };
    match (rng.below(outcomes), change) {
        (0, _) => {} // dropped
        (1, _) | (_, Pending::SetLen(_)) => change.apply(durable),
        (_, Pending::Write { offset, data }) => {
            for (piece_offset, piece) in sector_pieces(*offset, data) {
                if rng.chance(0.5) {
                    write_into(durable, piece_offset, piece);
                }
            }
        }
    }
}

/// Splits a write at the sector boundaries of the file: `(offset, bytes)` per sector touched.
pub(crate) fn sector_pieces(offset: u64, data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut pieces = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let at = offset + pos as u64;
        let room = to_usize(SECTOR_SIZE - at % SECTOR_SIZE);
        let end = (pos + room).min(data.len());
        pieces.push((at, &data[pos..end]));
        pos = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_pieces_split_at_file_offsets() {
        let data = vec![1u8; 1100];
        let pieces = sector_pieces(500, &data);
        let spans: Vec<(u64, usize)> = pieces.iter().map(|(o, d)| (*o, d.len())).collect();
        assert_eq!(spans, [(500, 12), (512, 512), (1024, 512), (1536, 64)]);
    }

    #[test]
    fn sync_then_crash_keeps_everything() {
        let mut f = Inode::default();
        f.change(Pending::Write {
            offset: 3,
            data: vec![9; 4],
        });
        f.change(Pending::SetLen(5));
        f.sync();
        f.crash(CrashMode::CHAOS, &mut SimRng::new(1));
        assert_eq!(f.volatile(), &[0, 0, 0, 9, 9]);
        assert!(!f.has_pending());
    }

    #[test]
    fn drop_unsynced_restores_the_durable_image() {
        let mut f = Inode::default();
        f.change(Pending::Write {
            offset: 0,
            data: vec![1; 10],
        });
        f.sync();
        f.change(Pending::Write {
            offset: 5,
            data: vec![2; 10],
        });
        assert_eq!(f.volatile().len(), 15);
        f.crash(CrashMode::DROP_UNSYNCED, &mut SimRng::new(1));
        assert_eq!(f.volatile(), &[1; 10]);
        assert_eq!(f.durable(), &[1; 10]);
    }
}
