//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`): a version line, a count line, then `topic partition offset`
//! lines, written atomically.

use std::io::Write;
use std::path::Path;

/// Marker file left in a log dir by a clean shutdown.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Writes text to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Writes an offset checkpoint.
pub fn write_offset_checkpoint(path: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (t, p, o) in entries {
        text.push_str(&format!("{t} {p} {o}\n"));
    }
    write_atomic(path, &text)
}

/// Reads an offset checkpoint; malformed lines are an error.
pub fn read_offset_checkpoint(path: &Path) -> std::io::Result<Vec<(String, i32, i64)>> {
    let text = std::fs::read_to_string(path)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed checkpoint {}", path.display()),
        )
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(bad)?;
    let mut out = Vec::with_capacity(count.min(1 << 20));
    for line in lines.take(count) {
        let mut parts = line.rsplitn(3, ' ');
        let o = parts.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let p = parts.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let t = parts.next().ok_or_else(bad)?.to_string();
        out.push((t, p, o));
    }
    if out.len() != count {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cp");
        let e = vec![("a.b-c".to_string(), 3, 42), ("x".to_string(), 0, 0)];
        write_offset_checkpoint(&p, &e).unwrap();
        assert_eq!(read_offset_checkpoint(&p).unwrap(), e);
        std::fs::write(&p, "0\n2\na 1 1\n").unwrap();
        assert!(read_offset_checkpoint(&p).is_err());
    }
}
