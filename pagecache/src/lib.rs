//! # pagecache: delta chains in memory, fragments in the log
//!
//! (Under construction: see the issue. The crate doc is completed with the cache itself.)

mod checkpoint;
mod codec;
mod error;
mod fragment;
mod location;
mod model;

pub use error::{Error, Result};
pub use location::{Location, MAX_FILE_BYTES, MAX_RECORD_LEN};
pub use model::PageModel;
