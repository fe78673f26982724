//! Markdown tables as aligned plain text, for a `<pre>` block (Telegram has no tables).

/// The cells of a table being read, as plain text.
#[derive(Default)]
pub(super) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn start_row(&mut self) {
        self.rows.push(Vec::new());
    }

    pub(super) fn start_cell(&mut self) {
        if self.rows.is_empty() {
            self.start_row();
        }
        if let Some(row) = self.rows.last_mut() {
            row.push(String::new());
        }
    }

    pub(super) fn push_text(&mut self, text: &str) {
        if let Some(cell) = self.rows.last_mut().and_then(|row| row.last_mut()) {
            cell.push_str(&text.replace('\n', " "));
        }
    }

    /// The rows with columns padded to equal width, the header underlined.
    pub(super) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                let cells = self.rows.iter().filter_map(|row| row.get(i));
                cells.map(|c| c.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut lines = Vec::new();
        for (index, row) in self.rows.iter().enumerate() {
            let cells = widths.iter().enumerate().map(|(i, width)| {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                format!("{cell:<width$}")
            });
            lines.push(cells.collect::<Vec<_>>().join(" | ").trim_end().to_string());
            if index == 0 {
                let rule = widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>();
                lines.push(rule.join("-+-"));
            }
        }
        lines.join("\n")
    }
}
