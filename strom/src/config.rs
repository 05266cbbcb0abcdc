//! The config file (`--env-file FILE` / `STROM_CONFIG`): `STROM_*=value` lines in dotenv syntax, loaded into the
//! environment before the command line is parsed, so that every setting can come from it. The environment wins over
//! the file, and flags win over both.

use std::path::PathBuf;

use anyhow::Context;

/// Loads `--env-file FILE` / `STROM_CONFIG` into the environment before clap reads it, so every `STROM_*` setting can
/// come from the file. Existing variables are kept (the environment wins).
///
/// # Errors
/// The named file cannot be read or parsed.
pub fn load_config_file() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let mut path = std::env::var_os("STROM_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--env-file" {
            path = args.next().map(PathBuf::from);
        } else if let Some(value) = arg.strip_prefix("--env-file=") {
            path = Some(PathBuf::from(value));
        }
    }
    if let Some(path) = path {
        dotenvy::from_path(&path)
            .with_context(|| format!("Failed to read the config file {}", path.display()))?;
    }
    Ok(())
}
