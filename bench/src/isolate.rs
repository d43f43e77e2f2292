//! One child process per engine: the parent re-executes this binary with the hidden `run-child`
//! subcommand, a suite flag and the child's spec as JSON; the child runs the engine on a fresh
//! directory and prints its [`EngineReport`] as JSON on stdout. Its stderr is the parent's, so its
//! progress bars draw on the terminal. Peak RSS is measured by the child itself (`VmHWM`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::engine::Result;
use crate::kv::spec::EngineReport;

/// A fresh directory for one engine's store under `scratch`, removed when dropped.
pub fn fresh_dir(
    scratch: &Path,
    suite: &str,
    engine: &str,
) -> Result<(tempfile::TempDir, PathBuf)> {
    std::fs::create_dir_all(scratch)?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{suite}-{engine}-"))
        .tempdir_in(scratch)?;
    let db = dir.path().join("db");
    Ok((dir, db))
}

/// Runs `run-child --<suite> <spec as JSON>` and parses the report the child prints.
pub fn run_child<S: Serialize>(suite: &str, spec: &S) -> Result<EngineReport> {
    let output = Command::new(std::env::current_exe()?)
        .arg("run-child")
        .arg(format!("--{suite}"))
        .arg(serde_json::to_string(spec)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("child exited with {}", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
