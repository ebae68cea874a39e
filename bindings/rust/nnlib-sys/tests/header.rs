//! The declarations in src/lib.rs match include/nnlib.h exactly: every
//! function (name, parameter and result types), every enum value and integer
//! constant, and every struct's fields in order. Both files are parsed as
//! text (no C compiler involved); the header is found at
//! $NNLIB_HEADER or ../../../include/nnlib.h from this crate.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn header_path() -> PathBuf {
    match std::env::var("NNLIB_HEADER") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include/nnlib.h"),
    }
}

fn strip_c_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        out.push(' ');
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn strip_rust_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(tok: &str) -> bool {
    !tok.is_empty() && tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "nnlib_tensor **out" -> "nnlib_tensor **"; "const char*" -> "const char *"
fn c_type(decl: &str, drop_name: bool) -> String {
    let spaced = decl.replace('*', " * ");
    let mut toks: Vec<&str> = spaced.split_whitespace().collect();
    if drop_name && toks.len() > 1 && is_ident(toks[toks.len() - 1]) {
        toks.pop();
    }
    toks.join(" ").replace("* *", "**")
}

type Sig = (String, Vec<String>);

fn header_functions(h: &str) -> BTreeMap<String, Sig> {
    let mut out = BTreeMap::new();
    // declarations start a line with NNLIB_API (the macro's own #define
    // lines do not)
    let starts: Vec<usize> = h
        .match_indices("NNLIB_API")
        .map(|(i, _)| i)
        .filter(|&i| h[..i].rsplit('\n').next().map_or(true, |pre| pre.trim().is_empty()))
        .collect();
    for start in starts {
        let piece = &h[start + "NNLIB_API".len()..];
        let decl = &piece[..piece.find(';').expect("declaration ends with ;")];
        let open = decl.find('(').unwrap();
        let close = decl.rfind(')').unwrap();
        let head = c_type(&decl[..open], false);
        let (ret, name) = match head.rfind(' ') {
            Some(i) => (head[..i].to_string(), head[i + 1..].to_string()),
            None => panic!("no result type in {}", head),
        };
        let params = decl[open + 1..close].trim();
        let types = if params == "void" {
            Vec::new()
        } else {
            params.split(',').map(|p| c_type(p, true)).collect()
        };
        out.insert(name, (ret, types));
    }
    out
}

/// Rust type (as written in lib.rs) -> the header's spelling.
fn rust_to_c(t: &str) -> String {
    let t = t.trim();
    if let Some(rest) = t.strip_prefix("*mut ") {
        let inner = rust_to_c(rest);
        return if inner.ends_with('*') { format!("{}*", inner) } else { format!("{} *", inner) };
    }
    if let Some(rest) = t.strip_prefix("*const ") {
        let inner = rust_to_c(rest);
        // a const pointer to a pointer: "const nnlib_tensor * const *"
        return if inner.ends_with('*') { format!("{} const *", inner) } else { format!("const {} *", inner) };
    }
    match t {
        "c_int" => "int",
        "c_uint" => "unsigned",
        "c_char" => "char",
        "c_void" => "void",
        "f32" => "float",
        "f64" => "double",
        "usize" => "size_t",
        "i64" => "int64_t",
        "u64" => "uint64_t",
        "u32" => "uint32_t",
        "i32" => "int32_t",
        "u8" => "uint8_t",
        other => other,
    }
    .to_string()
}

fn rust_functions(src: &str) -> BTreeMap<String, Sig> {
    let block = &src[src.find("extern \"C\" {").expect("extern block")..];
    let mut out = BTreeMap::new();
    for piece in block.split("pub fn ").skip(1) {
        let decl = &piece[..piece.find(';').unwrap()];
        let open = decl.find('(').unwrap();
        let close = decl.rfind(')').unwrap();
        let name = decl[..open].trim().to_string();
        let params = decl[open + 1..close].trim();
        let types = if params.is_empty() {
            Vec::new()
        } else {
            params
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| rust_to_c(&p[p.find(':').expect("name: type") + 1..]))
                .collect()
        };
        let ret = match decl[close + 1..].trim().strip_prefix("->") {
            Some(r) => rust_to_c(r),
            None => "void".to_string(),
        };
        out.insert(name, (ret, types));
    }
    out
}

fn header_constants(h: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    // enumerators
    for piece in h.split("typedef enum").skip(1) {
        let body = &piece[piece.find('{').unwrap() + 1..piece.find('}').unwrap()];
        for item in body.split(',') {
            if let Some(eq) = item.find('=') {
                out.insert(item[..eq].trim().to_string(), item[eq + 1..].trim().parse().unwrap());
            }
        }
    }
    // #define NNLIB_X <integer literal>
    for line in h.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() >= 3 && toks[0] == "#define" && toks[1].starts_with("NNLIB_") {
            if let Ok(v) = toks[2].trim_end_matches('u').parse::<i64>() {
                out.insert(toks[1].to_string(), v);
            }
        }
    }
    out
}

fn rust_constants(src: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in src.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ") {
            let name = rest[..rest.find(':').unwrap()].trim();
            let value = rest[rest.find('=').unwrap() + 1..].trim().trim_end_matches(';');
            if let Ok(v) = value.parse::<i64>() {
                out.insert(name.to_string(), v);
            }
        }
    }
    out
}

/// struct name -> field names in order
fn header_structs(h: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for piece in h.split("typedef struct").skip(1) {
        let name = piece.split_whitespace().next().unwrap().to_string();
        let (open, close) = match (piece.find('{'), piece.find('}')) {
            (Some(o), Some(c)) if o < piece.find(';').unwrap_or(usize::MAX) => (o, c),
            _ => continue, // an opaque typedef
        };
        let mut fields = Vec::new();
        for decl in piece[open + 1..close].split(';') {
            let decl = decl.trim();
            if decl.is_empty() {
                continue;
            }
            if let Some(fp) = decl.find("(*") {
                // a function pointer: "void *(*alloc)(size_t ...)"
                let end = decl[fp..].find(')').unwrap() + fp;
                fields.push(decl[fp + 2..end].trim().to_string());
                continue;
            }
            let decl = match decl.find('[') {
                Some(i) => &decl[..i],
                None => decl,
            };
            // "float beta1, beta2" declares two fields
            let mut parts = decl.split(',');
            let first = c_type(parts.next().unwrap(), false);
            fields.push(first.split(' ').last().unwrap().trim_start_matches('*').to_string());
            for more in parts {
                fields.push(more.trim().trim_start_matches('*').to_string());
            }
        }
        out.insert(name, fields);
    }
    out
}

fn rust_structs(src: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for piece in src.split("pub struct ").skip(1) {
        let name = piece.split_whitespace().next().unwrap().to_string();
        if !name.starts_with("nnlib_") {
            continue;
        }
        let body = &piece[piece.find('{').unwrap() + 1..];
        let mut fields = Vec::new();
        let mut depth = 0i32;
        let mut current = String::new();
        let mut prev = ' ';
        for c in body.chars() {
            match c {
                '(' | '<' | '[' => depth += 1,
                '>' if prev == '-' => {} // the arrow of a fn type
                ')' | '>' | ']' => depth -= 1,
                _ => {}
            }
            prev = c;
            if depth == 0 && (c == ',' || c == '}') {
                if let Some(rest) = current.trim().strip_prefix("pub ") {
                    fields.push(rest[..rest.find(':').unwrap()].trim().to_string());
                }
                current.clear();
                if c == '}' {
                    break;
                }
            } else {
                current.push(c);
            }
        }
        out.insert(name, fields);
    }
    out
}

struct Sources {
    header: String,
    rust: String,
}

fn sources() -> Sources {
    let path = header_path();
    let header = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({}); set NNLIB_HEADER", path.display(), e));
    let rust = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    Sources { header: strip_c_comments(&header), rust: strip_rust_comments(&rust) }
}

#[test]
fn every_function_matches_the_header() {
    let s = sources();
    let c = header_functions(&s.header);
    let r = rust_functions(&s.rust);
    assert!(c.len() > 60, "parsed only {} functions from the header", c.len());
    let missing: Vec<_> = c.keys().filter(|k| !r.contains_key(*k)).collect();
    assert!(missing.is_empty(), "in nnlib.h but not declared in nnlib-sys/src/lib.rs: {:?}", missing);
    let extra: Vec<_> = r.keys().filter(|k| !c.contains_key(*k)).collect();
    assert!(extra.is_empty(), "declared in nnlib-sys but not in nnlib.h: {:?}", extra);
    for (name, sig) in &c {
        assert_eq!(&r[name], sig, "signature of {}", name);
    }
}

#[test]
fn every_enum_value_and_constant_matches_the_header() {
    let s = sources();
    let c = header_constants(&s.header);
    let r = rust_constants(&s.rust);
    assert!(c.len() > 50);
    for (name, value) in &c {
        assert_eq!(r.get(name), Some(value), "{}", name);
    }
    for name in r.keys() {
        assert!(c.contains_key(name), "{} is not in the header", name);
    }
}

#[test]
fn every_struct_has_the_header_fields_in_order() {
    let s = sources();
    let c = header_structs(&s.header);
    let r = rust_structs(&s.rust);
    assert!(c.contains_key("nnlib_fit_options"));
    for (name, fields) in &c {
        assert_eq!(r.get(name), Some(fields), "fields of {}", name);
    }
    assert_eq!(c.len(), r.len(), "structs: header {:?}, rust {:?}", c.keys(), r.keys());
}
