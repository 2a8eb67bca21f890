//! runc-style logging: `--log FILE` and `--log-format text|json`. containerd's shim reads
//! the JSON lines (`{"level":"error","msg":...,"time":...}`) to show the user berth's error.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::container::now_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    path: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets where log lines go; called once by the CLI before any work.
pub fn init(path: Option<PathBuf>, format: Format, debug: bool) {
    let _ = LOGGER.set(Logger {
        path,
        format,
        debug,
    });
}

fn write(level: &str, msg: &str) {
    let Some(logger) = LOGGER.get() else { return };
    if level == "debug" && !logger.debug {
        return;
    }
    let line = match logger.format {
        Format::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": now_rfc3339()}).to_string()
        }
        Format::Text => format!("time=\"{}\" level={level} msg={msg:?}", now_rfc3339()),
    };
    match &logger.path {
        Some(path) => {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{line}");
            }
        }
        // Without a log file, warnings and debug lines go to stderr as runc does.
        None if level != "error" => eprintln!("{line}"),
        None => {}
    }
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    write("debug", msg);
}
