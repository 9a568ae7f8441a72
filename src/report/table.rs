//! TEMPORARY stand-in until the report branch lands.
use std::fmt;
pub struct Table {
    rows: Vec<Vec<String>>,
}
impl Table {
    pub fn new(h: Vec<&str>) -> Table {
        Table { rows: vec![h.into_iter().map(String::from).collect()] }
    }
    pub fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }
}
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rows {
            writeln!(f, "{}", r.join("  "))?;
        }
        Ok(())
    }
}
