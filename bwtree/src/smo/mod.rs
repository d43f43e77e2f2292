//! Structure modifications: consolidation, splits, merges, root growth and shrink. All are
//! latch-free: each step is one CAS on one page, every half-done change is visible in the
//! pages themselves, and any thread that runs into one finishes it (help-along).
//!
//! ## Split (node N at level l, parent P)
//! 1. Allocate N' holding N's upper half (`[sep, N.high)`, N's old right sibling).
//! 2. CAS a `Split { sep, right: N' }` delta onto N. N now ends at `sep`; a descent for a key
//!    at or past `sep` arriving at N follows the right link to N'. On CAS failure, free N'.
//! 3. CAS an `IndexEntry { sep, next, child: N' }` onto P. If this is lost (crash, race),
//!    the next descent that reaches N through P and has to follow N's right link posts it.
//!
//! ## Merge (child R of index node P into its left sibling L)
//! 1. CAS `Intent { sep_R, R }` onto P. P holds at most one intent, and while it does P
//!    neither splits nor is merged (whoever wants to, finishes the merge first). R must not be
//!    P's first child: L and R then share the parent for the whole merge (this is the rule for
//!    the remove-node vs parent-split race: the parent cannot split while the intent is on it,
//!    and a leftmost child is never merged).
//! 2. CAS `Remove { parent: P }` onto R (R must hold no intent of its own). R never changes
//!    again; a descent arriving at R helps finish the merge and restarts. A reader that
//!    cannot help (a full disk) reads through R until L has absorbed it, then goes to L
//!    (`Tree::detour_removed` states why that is exact).
//! 3. Walk right from P's child left of `sep_R` to the node whose right sibling is R and CAS
//!    `Merge { sep_R, R's contents }` onto it: it now covers R's range too.
//! 4. CAS `TermDelete` onto P (removing `sep_R` and the intent); its winner frees R's pid,
//!    which epoch-based reclamation keeps from reuse while any pinned thread may hold it.
//!
//! ## Root
//! The root's pid never changes. It grows by moving its contents into two new children and
//! replacing itself with an index node over them (one CAS), and shrinks when it is an index
//! node with a single child C: CAS `Remove { parent: root }` onto C (C must cover everything),
//! then replace the root by C's contents and free C.

#[cfg(test)]
pub(crate) mod full_disk;
mod maintain;
mod merge;
mod root;
mod split;

pub(crate) use merge::Detour;
