//! `docs/PROTOCOL.md` §5.9 and `protocol/src/msg.rs` describe the same
//! messages, in both directions:
//!
//! - **Shape.** Every type, variant and field that serde sees in `msg.rs`
//!   (traced with `serde-reflection`, starting from `Message`) is in the
//!   document's ` ```schema ` blocks with the same msgpack type, and
//!   nothing else is there.
//! - **Values.** For every documented struct and struct variant, a message
//!   built from the document alone — only the required fields, written as
//!   another implementation would write them — decodes into the code's
//!   types; dropping a required field is refused; and each optional field
//!   sent with its documented default decodes to the same value as leaving
//!   it out.
//!
//! Every mismatch is listed with the item and field it concerns and what to
//! write; for an item missing from the document the whole block to paste is
//! printed (add the `= DEFAULT` of optional fields by hand: serde's shape
//! does not say which fields have defaults; the value check then does).

use std::collections::{BTreeMap, BTreeSet};

use distant_protocol::msg::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_reflection::{
    ContainerFormat, Format, Named, Registry, Tracer, TracerConfig, VariantFormat,
};

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

// ---------------------------------------------------------------------------
// The document's schema
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: String,
    default: Option<String>,
}

#[derive(Debug, Clone)]
enum Shape {
    Unit,
    NewType(String),
    Fields(Vec<Field>),
}

/// `enum::variant` or `struct` items, keyed by `Enum::Variant` / `Name`.
#[derive(Default, Debug)]
struct Doc {
    structs: BTreeMap<String, Vec<Field>>,
    /// enum name → variant name → shape
    enums: BTreeMap<String, BTreeMap<String, Shape>>,
    errors: Vec<String>,
}

fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
    .trim_end()
}

/// Reads every ` ```schema ` block of the document.
fn parse_doc() -> Doc {
    let lines: Vec<&str> = DOC.lines().collect();
    parse_lines(&lines)
}

/// A bare `Enum::Variant` header followed by indented lines is a struct
/// variant; it is marked with a trailing ` {` before the line parser runs.
fn parse_lines(lines: &[&str]) -> Doc {
    let mut rewritten = String::new();
    let mut in_block = false;
    for (i, raw) in lines.iter().enumerate() {
        if raw.trim() == "```schema" {
            in_block = true;
        } else if raw.trim() == "```" {
            in_block = false;
        }
        let line = strip_comment(raw);
        let is_header =
            in_block && !line.starts_with(' ') && line.contains("::") && !line.contains('(');
        let owns_fields = is_header
            && lines[i + 1..]
                .iter()
                .map(|l| strip_comment(l))
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with(' '));
        if owns_fields {
            rewritten.push_str(line);
            rewritten.push_str(" {");
        } else {
            rewritten.push_str(raw);
        }
        rewritten.push('\n');
    }
    let mut doc = Doc::default();
    parse_into(&mut doc, &rewritten);
    doc
}

fn parse_into(doc: &mut Doc, text: &str) {
    let mut in_block = false;
    let mut current: Option<(String, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        if !in_block {
            in_block = raw.trim() == "```schema";
            current = None;
            continue;
        }
        if raw.trim() == "```" {
            in_block = false;
            continue;
        }
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(' ') {
            let Some((owner, name)) = &current else {
                doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: a field line outside of an item: {raw:?}"
                ));
                continue;
            };
            let Some((fname, rest)) = line.trim().split_once(':') else {
                doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: expected `name: TYPE [= DEFAULT]`: {raw:?}"
                ));
                continue;
            };
            let (ty, default) = match rest.split_once('=') {
                Some((ty, d)) => (ty.trim().to_owned(), Some(d.trim().to_owned())),
                None => (rest.trim().to_owned(), None),
            };
            let field = Field {
                name: fname.trim().to_owned(),
                ty,
                default,
            };
            let fields = if owner.is_empty() {
                doc.structs.get_mut(name)
            } else {
                match doc.enums.get_mut(owner).and_then(|e| e.get_mut(name)) {
                    Some(Shape::Fields(f)) => Some(f),
                    _ => None,
                }
            };
            match fields {
                Some(f) => f.push(field),
                None => doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: {owner}::{name} cannot have fields: {raw:?}"
                )),
            }
            continue;
        }
        current = None;
        if let Some(name) = line.strip_prefix("struct ") {
            let name = name.trim().to_owned();
            if doc.structs.insert(name.clone(), Vec::new()).is_some() {
                doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: struct {name} is listed twice"
                ));
            }
            current = Some((String::new(), name));
        } else if let Some(rest) = line.strip_prefix("enum ") {
            let Some((name, variants)) = rest.split_once('=') else {
                doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: expected `enum Name = A | B`: {raw:?}"
                ));
                continue;
            };
            let entry = doc.enums.entry(name.trim().to_owned()).or_default();
            for v in variants.split('|') {
                entry.insert(v.trim().to_owned(), Shape::Unit);
            }
        } else if let Some((owner, rest)) = line.split_once("::") {
            let owner = owner.trim().to_owned();
            let (variant, shape) = if let Some(v) = rest.strip_suffix(" {") {
                (v.trim(), Shape::Fields(Vec::new()))
            } else if let Some((v, inner)) = rest.split_once('(') {
                let Some(inner) = inner.trim_end().strip_suffix(')') else {
                    doc.errors
                        .push(format!("PROTOCOL.md:{line_no}: unclosed `(`: {raw:?}"));
                    continue;
                };
                (v.trim(), Shape::NewType(inner.trim().to_owned()))
            } else {
                (rest.trim(), Shape::Unit)
            };
            let entry = doc.enums.entry(owner.clone()).or_default();
            if entry.insert(variant.to_owned(), shape).is_some() {
                doc.errors.push(format!(
                    "PROTOCOL.md:{line_no}: {owner}::{variant} is listed twice"
                ));
            }
            current = Some((owner, variant.to_owned()));
        } else {
            doc.errors.push(format!(
                "PROTOCOL.md:{line_no}: expected `Enum::Variant`, `struct Name` or `enum Name = …`: {raw:?}"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// The code's shape
// ---------------------------------------------------------------------------

/// Every named type of msg.rs, for tracing and decoding. A type added to
/// msg.rs must be added here too (the test says so when it is missing).
macro_rules! msg_types {
    ($callback:ident) => {
        $callback!(
            Message,
            Request,
            RequestPayload,
            Response,
            ResponsePayload,
            Op,
            Reply,
            WriteOptions,
            SearchTarget,
            SearchQuery,
            PtySize,
            OutputFraming,
            FileType,
            DirEntry,
            PathError,
            FileStamp,
            Metadata,
            ChangeKind,
            Change,
            SearchMatch,
            Submatch,
            OutputStream,
            SystemInfo,
            VersionInfo,
            ErrorKind,
            ErrorReply,
            IndexQuery,
            ListeningPort,
        )
    };
}

fn registry() -> Registry {
    let mut tracer = Tracer::new(TracerConfig::default());
    macro_rules! trace {
        ($($t:ident),* $(,)?) => {
            $(
                tracer
                    .trace_simple_type::<$t>()
                    .unwrap_or_else(|e| panic!("{} does not trace: {e}", stringify!($t)));
            )*
        };
    }
    msg_types!(trace);
    match tracer.registry() {
        Ok(r) => r,
        Err(e) => panic!(
            "msg.rs has types the test does not know ({e}): add them to `msg_types!` in \
             protocol/tests/spec_schema.rs"
        ),
    }
}

/// The schema notation of a serde format.
fn notation(format: &Format) -> String {
    match format {
        Format::TypeName(name) => name.clone(),
        Format::Unit => "nil".into(),
        Format::Bool => "bool".into(),
        Format::I8 => "i8".into(),
        Format::I16 => "i16".into(),
        Format::I32 => "i32".into(),
        Format::I64 => "i64".into(),
        Format::U8 => "u8".into(),
        Format::U16 => "u16".into(),
        Format::U32 => "u32".into(),
        Format::U64 => "u64".into(),
        Format::Str | Format::Char => "str".into(),
        Format::Bytes => "bin".into(),
        Format::Option(inner) => format!("{} | nil", notation(inner)),
        Format::Seq(inner) => format!("[{}]", notation(inner)),
        Format::Map { key, value } => format!("{{{}: {}}}", notation(key), notation(value)),
        Format::Tuple(items) => format!(
            "[{}]",
            items.iter().map(notation).collect::<Vec<_>>().join(", ")
        ),
        Format::TupleArray { content, size } => {
            format!("[{}]", vec![notation(content); *size].join(", "))
        }
        other => format!("<{other:?} has no schema notation>"),
    }
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn block_for_fields(header: &str, fields: &[Named<Format>]) -> String {
    let mut out = format!("{header}\n");
    for f in fields {
        out.push_str(&format!("  {}: {}\n", f.name, notation(&f.value)));
    }
    out
}

fn compare_fields(item: &str, code: &[Named<Format>], doc: &[Field], errors: &mut Vec<String>) {
    let doc_by_name: BTreeMap<&str, &Field> = doc.iter().map(|f| (f.name.as_str(), f)).collect();
    let code_names: BTreeSet<&str> = code.iter().map(|f| f.name.as_str()).collect();
    for f in code {
        match doc_by_name.get(f.name.as_str()) {
            None => errors.push(format!(
                "{item}.{}: in msg.rs but not in PROTOCOL.md §5 — add `  {}: {}`",
                f.name,
                f.name,
                notation(&f.value)
            )),
            Some(d) if squash(&d.ty) != squash(&notation(&f.value)) => errors.push(format!(
                "{item}.{}: PROTOCOL.md says `{}`, msg.rs has `{}`",
                f.name,
                d.ty,
                notation(&f.value)
            )),
            Some(_) => {}
        }
    }
    for d in doc {
        if !code_names.contains(d.name.as_str()) {
            errors.push(format!(
                "{item}.{}: in PROTOCOL.md §5 but msg.rs has no such field",
                d.name
            ));
        }
    }
}

fn compare_shapes(reg: &Registry, doc: &Doc) -> Vec<String> {
    let mut errors = doc.errors.clone();
    for (name, container) in reg {
        match container {
            ContainerFormat::Struct(fields) => match doc.structs.get(name) {
                None => errors.push(format!(
                    "struct {name}: in msg.rs but not in PROTOCOL.md §5 — add:\n{}",
                    block_for_fields(&format!("struct {name}"), fields)
                )),
                Some(d) => compare_fields(&format!("struct {name}"), fields, d, &mut errors),
            },
            ContainerFormat::Enum(variants) => {
                let documented = doc.enums.get(name);
                for v in variants.values() {
                    let item = format!("{name}::{}", v.name);
                    let d = documented.and_then(|e| e.get(&v.name));
                    match (&v.value, d) {
                        (VariantFormat::Unit, Some(Shape::Unit)) => {}
                        (VariantFormat::NewType(f), Some(Shape::NewType(t))) => {
                            if squash(t) != squash(&notation(f)) {
                                errors.push(format!(
                                    "{item}: PROTOCOL.md says `({t})`, msg.rs has `({})`",
                                    notation(f)
                                ));
                            }
                        }
                        (VariantFormat::Struct(fields), Some(Shape::Fields(df))) => {
                            compare_fields(&item, fields, df, &mut errors)
                        }
                        (code, None) => errors.push(format!(
                            "{item}: in msg.rs but not in PROTOCOL.md §5 — add:\n{}",
                            match code {
                                VariantFormat::Struct(fields) => block_for_fields(&item, fields),
                                VariantFormat::NewType(f) => format!("{item}({})\n", notation(f)),
                                _ => format!("{item}\n"),
                            }
                        )),
                        (code, Some(d)) => errors.push(format!(
                            "{item}: PROTOCOL.md gives it the shape {d:?}, msg.rs has {code:?}"
                        )),
                    }
                }
                if let Some(e) = documented {
                    let code: BTreeSet<&str> = variants.values().map(|v| v.name.as_str()).collect();
                    for v in e.keys() {
                        if !code.contains(v.as_str()) {
                            errors.push(format!(
                                "{name}::{v}: in PROTOCOL.md §5 but msg.rs has no such variant"
                            ));
                        }
                    }
                }
            }
            other => errors.push(format!(
                "{name}: {other:?} has no schema notation (use a struct with named fields or an enum)"
            )),
        }
    }
    for name in doc.structs.keys() {
        if !matches!(reg.get(name), Some(ContainerFormat::Struct(_))) {
            errors.push(format!(
                "struct {name}: in PROTOCOL.md §5 but not a struct of msg.rs"
            ));
        }
    }
    for name in doc.enums.keys() {
        if !matches!(reg.get(name), Some(ContainerFormat::Enum(_))) {
            errors.push(format!(
                "enum {name}: in PROTOCOL.md §5 but not an enum of msg.rs"
            ));
        }
    }
    errors
}

// ---------------------------------------------------------------------------
// Values built from the document alone
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum V {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Bin(Vec<u8>),
    Arr(Vec<V>),
    Map(Vec<(String, V)>),
}

impl V {
    fn encode(&self, out: &mut Vec<u8>) {
        use rmp::encode::*;
        match self {
            V::Nil => write_nil(out).unwrap(),
            V::Bool(b) => write_bool(out, *b).unwrap(),
            V::Int(i) => {
                write_sint(out, *i).unwrap();
            }
            V::Str(s) => write_str(out, s).unwrap(),
            V::Bin(b) => write_bin(out, b).unwrap(),
            V::Arr(items) => {
                write_array_len(out, items.len() as u32).unwrap();
                for i in items {
                    i.encode(out);
                }
            }
            V::Map(entries) => {
                write_map_len(out, entries.len() as u32).unwrap();
                for (k, v) in entries {
                    write_str(out, k).unwrap();
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value of a documented type, as the document describes it.
fn sample(doc: &Doc, ty: &str, depth: usize) -> Result<V, String> {
    let ty = ty.trim();
    if depth > 16 {
        return Err(format!("`{ty}` nests too deeply"));
    }
    if let Some(inner) = ty.strip_suffix("| nil") {
        let _ = sample(doc, inner, depth + 1)?;
        return Ok(V::Nil);
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let parts: Vec<&str> = inner.split(',').collect();
        if parts.len() == 1 {
            return Ok(V::Arr(vec![sample(doc, parts[0], depth + 1)?]));
        }
        return parts
            .iter()
            .map(|p| sample(doc, p, depth + 1))
            .collect::<Result<_, _>>()
            .map(V::Arr);
    }
    if let Some(inner) = ty.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let (k, v) = inner
            .split_once(':')
            .ok_or_else(|| format!("`{ty}`: a map type is `{{K: V}}`"))?;
        if k.trim() != "str" {
            return Err(format!("`{ty}`: only str map keys are supported"));
        }
        return Ok(V::Map(vec![("k".into(), sample(doc, v, depth + 1)?)]));
    }
    Ok(match ty {
        "bool" => V::Bool(true),
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" => V::Int(1),
        "str" => V::Str("s".into()),
        "bin" => V::Bin(vec![1, 2]),
        "nil" => V::Nil,
        name => {
            if let Some(fields) = doc.structs.get(name) {
                V::Map(required_fields(doc, fields, depth + 1)?)
            } else if let Some(variants) = doc.enums.get(name) {
                let (v, shape) = variants
                    .iter()
                    .next()
                    .ok_or_else(|| format!("enum {name} has no variants"))?;
                variant_value(doc, v, shape, depth + 1)?
            } else {
                return Err(format!("`{name}` is not a type of the schema"));
            }
        }
    })
}

fn required_fields(doc: &Doc, fields: &[Field], depth: usize) -> Result<Vec<(String, V)>, String> {
    fields
        .iter()
        .filter(|f| f.default.is_none())
        .map(|f| Ok((f.name.clone(), sample(doc, &f.ty, depth)?)))
        .collect()
}

fn variant_value(doc: &Doc, variant: &str, shape: &Shape, depth: usize) -> Result<V, String> {
    Ok(match shape {
        Shape::Unit => V::Str(variant.into()),
        Shape::NewType(ty) => V::Map(vec![(variant.into(), sample(doc, ty, depth)?)]),
        Shape::Fields(fields) => V::Map(vec![(
            variant.into(),
            V::Map(required_fields(doc, fields, depth)?),
        )]),
    })
}

fn default_value(text: &str) -> Result<V, String> {
    Ok(match text.trim() {
        "nil" => V::Nil,
        "true" => V::Bool(true),
        "false" => V::Bool(false),
        "[]" => V::Arr(Vec::new()),
        "{}" => V::Map(Vec::new()),
        t if t.starts_with('"') && t.ends_with('"') && t.len() >= 2 => {
            V::Str(t[1..t.len() - 1].to_owned())
        }
        t => V::Int(
            t.parse()
                .map_err(|_| format!("`{t}` is not a default the notation knows"))?,
        ),
    })
}

/// Decodes `bytes` as the named type and encodes it again (the canonical
/// form, for comparisons).
type Canon = fn(&[u8]) -> Result<Vec<u8>, String>;

fn canon<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let value: T = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    rmp_serde::to_vec_named(&value).map_err(|e| e.to_string())
}

fn decoders() -> BTreeMap<&'static str, Canon> {
    macro_rules! table {
        ($($t:ident),* $(,)?) => {
            BTreeMap::from([$((stringify!($t), canon::<$t> as Canon)),*])
        };
    }
    msg_types!(table)
}

/// Checks one documented field list. `wrap` puts a field map into the
/// value of the type `decode` reads.
fn check_values(
    doc: &Doc,
    item: &str,
    fields: &[Field],
    decode: Canon,
    wrap: &dyn Fn(V) -> V,
    errors: &mut Vec<String>,
) {
    let required = match required_fields(doc, fields, 0) {
        Ok(r) => r,
        Err(e) => {
            errors.push(format!("{item}: {e}"));
            return;
        }
    };
    let base = match decode(&wrap(V::Map(required.clone())).bytes()) {
        Ok(b) => b,
        Err(e) => {
            errors.push(format!(
                "{item}: a message with only the fields PROTOCOL.md calls required does not \
                 decode ({e}); a field without `= DEFAULT` in msg.rs is missing from the doc's \
                 required ones, or a documented type is wrong"
            ));
            return;
        }
    };
    for (i, (name, _)) in required.iter().enumerate() {
        let mut without = required.clone();
        without.remove(i);
        if decode(&wrap(V::Map(without)).bytes()).is_ok() {
            errors.push(format!(
                "{item}.{name}: PROTOCOL.md says required, but msg.rs accepts it missing: \
                 write its default as `{name}: TYPE = DEFAULT`"
            ));
        }
    }
    for f in fields {
        let Some(default) = &f.default else { continue };
        let value = match default_value(default) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{item}.{}: {e}", f.name));
                continue;
            }
        };
        let mut with = required.clone();
        with.push((f.name.clone(), value));
        match decode(&wrap(V::Map(with)).bytes()) {
            Ok(got) if got == base => {}
            Ok(_) => errors.push(format!(
                "{item}.{}: PROTOCOL.md says the default is `{default}`, but msg.rs decodes a \
                 message without the field differently from one with `{default}`",
                f.name
            )),
            Err(e) => errors.push(format!(
                "{item}.{}: the documented default `{default}` does not decode: {e}",
                f.name
            )),
        }
    }
}

fn compare_values(doc: &Doc) -> Vec<String> {
    let decoders = decoders();
    let mut errors = Vec::new();
    for (name, fields) in &doc.structs {
        match decoders.get(name.as_str()) {
            Some(d) => check_values(
                doc,
                &format!("struct {name}"),
                fields,
                *d,
                &|v| v,
                &mut errors,
            ),
            None => errors.push(format!(
                "struct {name}: add it to `msg_types!` in protocol/tests/spec_schema.rs"
            )),
        }
    }
    for (name, variants) in &doc.enums {
        let Some(decode) = decoders.get(name.as_str()) else {
            errors.push(format!(
                "enum {name}: add it to `msg_types!` in protocol/tests/spec_schema.rs"
            ));
            continue;
        };
        for (variant, shape) in variants {
            let item = format!("{name}::{variant}");
            match shape {
                Shape::Fields(fields) => {
                    let variant = variant.clone();
                    check_values(
                        doc,
                        &item,
                        fields,
                        *decode,
                        &move |v| V::Map(vec![(variant.clone(), v)]),
                        &mut errors,
                    );
                }
                shape => match variant_value(doc, variant, shape, 0) {
                    Ok(v) => {
                        if let Err(e) = decode(&v.bytes()) {
                            errors
                                .push(format!("{item}: the documented form does not decode: {e}"));
                        }
                    }
                    Err(e) => errors.push(format!("{item}: {e}")),
                },
            }
        }
    }
    errors
}

fn report(what: &str, errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "docs/PROTOCOL.md §5.9 and protocol/src/msg.rs disagree ({what}; {} problems):\n\n{}\n",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn every_type_variant_and_field_of_msg_rs_is_documented_with_its_type() {
    let doc = parse_doc();
    report("shape", compare_shapes(&registry(), &doc));
}

#[test]
fn messages_written_from_the_document_decode_with_the_documented_defaults() {
    let doc = parse_doc();
    report("values", compare_values(&doc));
}

#[test]
fn the_checker_catches_drift() {
    // A field removed from the doc, a wrong type, a false default and a
    // missing variant are each reported by name.
    let text = DOC
        .replace("  atomic: bool = true\n", "  atomic: bool = false\n")
        .replace("  if_etag: str | nil = nil\n", "")
        .replace(
            "Op::CancelSearch                // → Ok\n  search: u64\n",
            "",
        )
        .replace(
            "  depth: u64                    // 1: children only; 0: unlimited\n",
            "  depth: str\n",
        )
        .replace("  offset: u64 = 0\n", "  offset: u64\n");
    let lines: Vec<&str> = text.lines().collect();
    let marked = parse_lines(&lines);
    let shape = compare_shapes(&registry(), &marked).join("\n");
    let values = compare_values(&marked).join("\n");
    let all = format!("{shape}\n{values}");
    for expected in [
        "struct WriteOptions.if_etag: in msg.rs but not in PROTOCOL.md",
        "Op::CancelSearch: in msg.rs but not in PROTOCOL.md §5 — add:\nOp::CancelSearch\n  search: u64",
        "Op::ReadDir.depth: PROTOCOL.md says `str`, msg.rs has `u64`",
        "struct WriteOptions.atomic: PROTOCOL.md says the default is `false`",
        "Op::FileRead.offset: PROTOCOL.md says required, but msg.rs accepts it missing",
    ] {
        assert!(all.contains(expected), "not reported: {expected}\n--- report:\n{all}");
    }
}
