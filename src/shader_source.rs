//! The WGSL "preprocessor": one directive, `//! import NAME`, which inlines `shaders/NAME.wgsl`
//! once. It is shared with `build.rs` (through `#[path]`), so the build validates exactly the
//! source the engine compiles, and naga's error positions map back to the original file and line.

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
            Some((file, l)) => format!("shaders/{file}.wgsl:{l}"),
            None => format!("<composed>:{line}"),
        }
    }
}

const IMPORT: &str = "//! import ";

/// Inline the imports of shader `name`; `read(name)` gives a file's text.
pub fn compose(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Composed, String> {
    let mut out = Composed { source: String::new(), origins: Vec::new() };
    let mut seen = Vec::new();
    inline(name, read, &mut seen, &mut out)?;
    Ok(out)
}

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
    let text =
        read(name).ok_or_else(|| format!("shader `{name}` is imported but shaders/{name}.wgsl does not exist"))?;
    for (i, line) in text.lines().enumerate() {
        if let Some(dep) = line.trim().strip_prefix(IMPORT) {
            inline(dep.trim(), read, seen, out)?;
        } else {
            out.source.push_str(line);
            out.source.push('\n');
            out.origins.push((name.to_string(), i + 1));
        }
    }
    Ok(())
}
