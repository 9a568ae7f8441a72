//! `//! import NAME` inlined once per shader, with the origin of every line kept for naga's
//! error positions.

/// A shader after imports were inlined, with the origin of every line.
#[derive(Debug, Clone)]
pub struct Composed {
    pub source: String,
    /// For each line of `source`: the file it came from and its 1-based line there.
    pub origins: Vec<(String, usize)>,
}

impl Composed {
    /// `file:line` of a 1-based line of the composed source.
    pub fn locate(&self, line: usize) -> String {
        match self.origins.get(line.saturating_sub(1)) {
            Some((file, l)) if file.starts_with('<') => format!("{file}:{l}"),
            Some((file, l)) => format!("shaders/{file}.wgsl:{l}"),
            None => format!("<composed>:{line}"),
        }
    }
}

const IMPORT: &str = "//! import ";

/// The shader `//! import NAME` names: `shaders/shared/NAME.wgsl`, or the generated `codes`.
pub fn library(name: &str) -> String {
    if name == "codes" { name.to_string() } else { format!("{SHARED}/{name}") }
}

/// The folder of `shaders/` that holds the libraries kernels import (no entry points of their own).
pub const SHARED: &str = "shared";

/// Inline the imports of shader `name`; `read(name)` gives a file's text.
pub fn compose(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Composed, String> {
    let mut out = Composed { source: String::new(), origins: Vec::new() };
    inline(name, read, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// Shader `name` whose text `text` was generated on the host (its lines' origin is
/// `<generated name>`), with its imports inlined like any file's.
pub fn compose_generated(name: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Composed, String> {
    let mut out = Composed { source: String::new(), origins: Vec::new() };
    append(&format!("<generated {name}>"), text, read, &mut vec![name.to_string()], &mut out)?;
    Ok(out)
}

/// Shader `name` with its imports, unless `seen` already holds it.
fn inline(
    name: &str,
    read: &dyn Fn(&str) -> Option<String>,
    seen: &mut Vec<String>,
    out: &mut Composed,
) -> Result<(), String> {
    if seen.iter().any(|s| s == name) {
        return Ok(());
    }
    seen.push(name.to_string());
    let text = if name == "codes" {
        super::codes::wgsl()
    } else {
        read(name).ok_or_else(|| format!("shaders/{name}.wgsl does not exist"))?
    };
    append(name, &text, read, seen, out)
}

/// `text`'s lines, each imported shader in place of its directive, every line tagged `origin`.
fn append(
    origin: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
    seen: &mut Vec<String>,
    out: &mut Composed,
) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        if let Some(dep) = line.trim().strip_prefix(IMPORT) {
            inline(&library(dep.trim()), read, seen, out)?;
        } else {
            out.source.push_str(line);
            out.source.push('\n');
            out.origins.push((origin.to_string(), i + 1));
        }
    }
    Ok(())
}
