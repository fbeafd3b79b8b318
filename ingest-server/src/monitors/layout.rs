//! Where each key of a monitors file is, so that errors found after parsing name the line.

/// Where each monitor's keys are in the text (1-based lines), found by reading the block
/// layout the way people write these files: `monitors:`, then `- ` items, one key per line.
/// Values of a flow-style file (`{name: a, …}`) fall back to the line of their item.
#[derive(Debug, Default)]
pub struct Layout {
    items: Vec<Item>,
}

#[derive(Debug, Default)]
pub struct Item {
    line: usize,
    keys: Vec<(String, usize)>,
    /// Lines of the entries under `notify:`.
    notify: Vec<usize>,
}

impl Layout {
    pub fn read(text: &str) -> Layout {
        let mut layout = Layout::default();
        let mut in_list = false;
        let mut dash: Option<usize> = None;
        let mut in_notify = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split(" #").next().unwrap_or_default().trim_end();
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = content.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                in_list = trimmed.starts_with("monitors:");
                dash = None;
                continue;
            }
            if !in_list {
                continue;
            }
            let is_item = trimmed == "-" || trimmed.starts_with("- ");
            if is_item && dash.is_none_or(|d| indent <= d) {
                dash = Some(indent);
                in_notify = false;
                let mut item = Item {
                    line,
                    ..Item::default()
                };
                if let Some(key) = key_of(trimmed.trim_start_matches('-').trim_start()) {
                    item.keys.push((key, line));
                }
                layout.items.push(item);
                continue;
            }
            let (Some(d), Some(item)) = (dash, layout.items.last_mut()) else {
                continue;
            };
            if is_item && in_notify && indent > d {
                item.notify.push(line);
            } else if let Some(key) = key_of(trimmed) {
                if indent <= d + 2 {
                    in_notify = key == "notify";
                    item.keys.push((key, line));
                }
            }
        }
        layout
    }

    /// The line of `key` in item `index`, else the item's line, else 1.
    pub fn line(&self, index: usize, key: &str) -> usize {
        let Some(item) = self.items.get(index) else {
            return 1;
        };
        item.keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(item.line, |(_, line)| *line)
    }

    /// The line of notify entry `n` of item `index`.
    pub fn notify_line(&self, index: usize, n: usize) -> usize {
        self.items
            .get(index)
            .and_then(|item| item.notify.get(n).copied())
            .unwrap_or_else(|| self.line(index, "notify"))
    }
}

/// `key` of a `key: value` or `key:` line.
fn key_of(text: &str) -> Option<String> {
    let (key, _) = text.split_once(':')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| key.to_string())
}
