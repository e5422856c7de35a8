//! A strict reader over the span-keeping TOML document tree
//! (`toml::de::DeTable`): typed field access that records which keys were
//! read, so that every key not read is an "unknown field" error at its own
//! line and column, and every error names the dotted field path.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{PolicyError, PolicyErrorKind};

/// The source text and file name, with a line index for offset → line:column.
pub(crate) struct Source<'a> {
    pub(crate) text: &'a str,
    pub(crate) file: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(text: &'a str, file: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            text,
            file,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }

    /// An error at byte `offset` for `field`.
    pub(crate) fn error(&self, offset: usize, field: &str, kind: PolicyErrorKind) -> PolicyError {
        let (line, column) = self.position(offset);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            field: field.to_string(),
            kind,
        }
    }
}

/// Where each field's value was found (dotted path → byte offset), kept so
/// the semantic checks after parsing can point at the value to change.
pub(crate) type Spans = BTreeMap<String, usize>;

/// A table being read: its path, entries, and the keys read so far.
pub(crate) struct Table<'t, 'i> {
    path: String,
    /// Byte offset errors about the table itself (a missing field) point at.
    at: usize,
    entries: &'t DeTable<'i>,
    read: BTreeSet<String>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "float",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "datetime",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "table",
    }
}

impl<'t, 'i> Table<'t, 'i> {
    pub(crate) fn root(doc: &'t Spanned<DeTable<'i>>) -> Self {
        Table {
            path: String::new(),
            at: 0,
            entries: doc.get_ref(),
            read: BTreeSet::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The entry for `key`, marked read.
    fn entry(&mut self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.read.insert(key.to_string());
        self.entries.get(key)
    }

    fn missing(&self, src: &Source<'_>, key: &str) -> PolicyError {
        src.error(
            self.at,
            &self.child_path(key),
            PolicyErrorKind::MissingField,
        )
    }

    fn wrong_type(
        &self,
        src: &Source<'_>,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        expected: &'static str,
    ) -> PolicyError {
        src.error(
            v.span().start,
            &self.child_path(key),
            PolicyErrorKind::WrongType {
                expected,
                found: type_name(v.get_ref()),
            },
        )
    }

    /// A required sub-table.
    pub(crate) fn table(
        &mut self,
        src: &Source<'_>,
        key: &str,
    ) -> Result<Table<'t, 'i>, PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        match v.get_ref() {
            DeValue::Table(t) => Ok(Table {
                path: self.child_path(key),
                at: v.span().start,
                entries: t,
                read: BTreeSet::new(),
            }),
            _ => Err(self.wrong_type(src, key, v, "table")),
        }
    }

    /// Every entry of this table as a sub-table (for `[chains.<id>]`), in
    /// source order; marks all keys read.
    pub(crate) fn subtables(
        &mut self,
        src: &Source<'_>,
    ) -> Result<Vec<(String, usize, Table<'t, 'i>)>, PolicyError> {
        let mut out = Vec::new();
        let mut keys: Vec<_> = self.entries.iter().collect();
        keys.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in keys {
            let key = k.get_ref().to_string();
            self.read.insert(key.clone());
            match v.get_ref() {
                DeValue::Table(t) => out.push((
                    key.clone(),
                    k.span().start,
                    Table {
                        path: self.child_path(&key),
                        at: v.span().start,
                        entries: t,
                        read: BTreeSet::new(),
                    },
                )),
                _ => return Err(self.wrong_type(src, &key, v, "table")),
            }
        }
        Ok(out)
    }

    /// Byte offset of the table (its header, or its value).
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// Records the value's offset for `key` in `spans`.
    fn note(&self, spans: &mut Spans, key: &str, at: usize) {
        spans.insert(self.child_path(key), at);
    }

    /// A required unsigned integer in `lo..=hi`.
    pub(crate) fn uint(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
        lo: u64,
        hi: u64,
    ) -> Result<u64, PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        let DeValue::Integer(i) = v.get_ref() else {
            return Err(self.wrong_type(src, key, v, "integer"));
        };
        let at = v.span().start;
        self.note(spans, key, at);
        let field = self.child_path(key);
        let value = u64::from_str_radix(i.as_str(), i.radix()).map_err(|_| {
            src.error(
                at,
                &field,
                PolicyErrorKind::OutOfRange {
                    value: i.to_string(),
                    lo,
                    hi,
                },
            )
        })?;
        if !(lo..=hi).contains(&value) {
            return Err(src.error(
                at,
                &field,
                PolicyErrorKind::OutOfRange {
                    value: value.to_string(),
                    lo,
                    hi,
                },
            ));
        }
        Ok(value)
    }

    /// A required `u32` in `lo..=hi`.
    pub(crate) fn u32(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
        lo: u32,
        hi: u32,
    ) -> Result<u32, PolicyError> {
        let v = self.uint(src, spans, key, u64::from(lo), u64::from(hi))?;
        // In range lo..=hi, both u32.
        Ok(u32::try_from(v).unwrap_or(hi))
    }

    /// A required boolean.
    pub(crate) fn bool(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
    ) -> Result<bool, PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        self.note(spans, key, v.span().start);
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(src, key, v, "boolean")),
        }
    }

    /// A required duration string (`"90s"`, `"2h"`, humantime syntax) of
    /// whole seconds in `lo..=hi`.
    pub(crate) fn duration(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
        lo: Duration,
        hi: Duration,
    ) -> Result<Duration, PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        let DeValue::String(text) = v.get_ref() else {
            return Err(self.wrong_type(src, key, v, "duration string such as \"90s\""));
        };
        let at = v.span().start;
        self.note(spans, key, at);
        let field = self.child_path(key);
        let d = humantime::parse_duration(text).map_err(|e| {
            src.error(
                at,
                &field,
                PolicyErrorKind::BadDuration {
                    text: text.to_string(),
                    reason: e.to_string(),
                },
            )
        })?;
        if d.subsec_nanos() != 0 {
            return Err(src.error(
                at,
                &field,
                PolicyErrorKind::BadDuration {
                    text: text.to_string(),
                    reason: "not a whole number of seconds".into(),
                },
            ));
        }
        if d < lo || d > hi {
            return Err(src.error(
                at,
                &field,
                PolicyErrorKind::OutOfRange {
                    value: text.to_string(),
                    lo: lo.as_secs(),
                    hi: hi.as_secs(),
                },
            ));
        }
        Ok(d)
    }

    /// A required number written as an integer or a decimal with at most
    /// three fraction digits, returned in thousandths, in `lo..=hi` thousandths.
    pub(crate) fn milli(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
        lo: u32,
        hi: u32,
    ) -> Result<u32, PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        let at = v.span().start;
        self.note(spans, key, at);
        let field = self.child_path(key);
        let text = match v.get_ref() {
            DeValue::Integer(i) if i.radix() == 10 => i.as_str().to_string(),
            DeValue::Float(x) => x.as_str().to_string(),
            _ => return Err(self.wrong_type(src, key, v, "number")),
        };
        let bad = || {
            src.error(
                at,
                &field,
                PolicyErrorKind::BadNumber { text: text.clone() },
            )
        };
        let text_digits = text.replace('_', "");
        let (whole, frac) = text_digits.split_once('.').unwrap_or((&text_digits, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 3
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac_milli: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        let value = whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac_milli))
            .ok_or_else(bad)?;
        if !(lo..=hi).contains(&value) {
            return Err(src.error(
                at,
                &field,
                PolicyErrorKind::OutOfRange {
                    value: text,
                    lo: u64::from(lo / 1000),
                    hi: u64::from(hi / 1000),
                },
            ));
        }
        Ok(value)
    }

    /// A required array of strings, each with the byte offset of its value.
    pub(crate) fn strings(
        &mut self,
        src: &Source<'_>,
        spans: &mut Spans,
        key: &str,
    ) -> Result<(usize, Vec<(String, usize)>), PolicyError> {
        let v = self.entry(key).ok_or_else(|| self.missing(src, key))?;
        let at = v.span().start;
        self.note(spans, key, at);
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(src, key, v, "array of strings"));
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span().start)),
                _ => return Err(self.wrong_type(src, key, item, "string")),
            }
        }
        Ok((at, out))
    }

    /// Fails on the first key (in source order) not in `known`: called when a
    /// table is opened, so a misspelt key is reported as unknown rather than
    /// as the missing field it was meant to be.
    pub(crate) fn only(&self, src: &Source<'_>, known: &[&str]) -> Result<(), PolicyError> {
        let mut unknown: Vec<&Spanned<_>> = self
            .entries
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|k| k.span().start);
        match unknown.first() {
            Some(k) => Err(src.error(
                k.span().start,
                &self.child_path(k.get_ref()),
                PolicyErrorKind::UnknownField,
            )),
            None => Ok(()),
        }
    }

    /// Fails on the first key (in source order) that was never read.
    pub(crate) fn finish(self, src: &Source<'_>) -> Result<(), PolicyError> {
        let mut unknown: Vec<&Spanned<_>> = self
            .entries
            .keys()
            .filter(|k| !self.read.contains(k.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|k| k.span().start);
        match unknown.first() {
            Some(k) => Err(src.error(
                k.span().start,
                &self.child_path(k.get_ref()),
                PolicyErrorKind::UnknownField,
            )),
            None => Ok(()),
        }
    }
}

/// Best-effort field name for a TOML syntax error at byte `offset` (the
/// document tree does not exist then): the last `[table]` header before the
/// error's line, and the key before `=` on that line, if any. Empty when
/// neither is found.
pub(crate) fn field_near(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let end = text
        .get(offset..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| offset + i);
    let line = text.get(start..end).unwrap_or("");
    let mut table = String::new();
    for l in text.get(..start).unwrap_or("").lines() {
        let l = l.trim();
        if let Some(h) = l.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            if let Some(close) = h.find(']') {
                table = h[..close].trim().to_string();
            }
        }
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'));
    match key {
        Some(k) if table.is_empty() => k,
        Some(k) => format!("{table}.{k}"),
        None => table,
    }
}

/// Byte range of a TOML parse error, if the parser reported one.
pub(crate) fn error_offset(span: Option<Range<usize>>) -> usize {
    span.map_or(0, |s| s.start)
}
