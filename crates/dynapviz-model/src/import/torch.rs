//! PyTorch `torch.save(state_dict)` files: a zip holding `*/data.pkl` (a pickle of an ordered
//! dict of tensors whose storages are persistent ids) and `*/data/N` (raw little-endian storage
//! bytes). A small pickle machine handles the opcodes these files use; anything else (arbitrary
//! objects, code) is refused, so loading a file never executes anything.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::Tensor;
use crate::error::{ModelError, Result, file_error};

#[derive(Clone, Debug)]
enum Value {
    /// None, booleans, floats and objects we do not model (e.g. backward hooks).
    Other,
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    /// A storage reference: (dtype name, key in the archive).
    Storage(String, String),
    Tensor {
        storage: Box<Value>,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
    Mark,
}

impl Value {
    /// How many values this one holds, itself included: what copying it costs.
    fn size(&self) -> usize {
        1 + match self {
            Value::Tuple(v) | Value::List(v) => v.iter().map(Value::size).sum(),
            Value::Dict(v) => v.iter().map(|(k, v)| k.size() + v.size()).sum(),
            Value::Tensor { storage, .. } => storage.size(),
            _ => 0,
        }
    }
}

/// The most values the machine copies in all. The memo's puts and gets copy a value; a
/// state_dict copies a few per tensor, but a pickle that copies its own copies (a "pickle bomb")
/// doubles with every few bytes, and would fill the memory.
const MAX_COPIED: usize = 1 << 22;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Values copied so far (see [`MAX_COPIED`]).
    copied: usize,
    path: &'a Path,
}

impl Machine<'_> {
    fn err(&self, what: impl std::fmt::Display) -> ModelError {
        file_error(self.path, format!("data.pkl at byte {}: {what}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.err("pickle ends early"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("unterminated text"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    /// Counts a copy of `size` values against [`MAX_COPIED`], before it is made.
    fn charge(&mut self, size: usize) -> Result<()> {
        self.copied = self.copied.saturating_add(size);
        if self.copied > MAX_COPIED {
            return Err(self.err(format!("the memo copies more than {MAX_COPIED} values: not a plain state_dict")));
        }
        Ok(())
    }

    /// Puts a copy of the top of the stack in the memo at `k`.
    fn put(&mut self, k: u32) -> Result<()> {
        let size = self.top()?.size();
        self.charge(size)?;
        let v = self.top()?.clone();
        self.memo.insert(k, v);
        Ok(())
    }

    /// Pushes a copy of the memo's value at `k`.
    fn get(&mut self, k: u32) -> Result<()> {
        let size = self.memo.get(&k).map(Value::size).ok_or_else(|| self.err(format!("memo {k} unset")))?;
        self.charge(size)?;
        if let Some(v) = self.memo.get(&k).cloned() {
            self.stack.push(v);
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value> {
        let pos = self.pos;
        self.stack.last_mut().ok_or_else(|| file_error(self.path, format!("data.pkl at byte {pos}: empty stack")))
    }

    fn string(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn reduce(&self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(name) = func else {
            return Err(self.err("REDUCE on a non-global"));
        };
        let Value::Tuple(args) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        Ok(match name.as_str() {
            "collections.OrderedDict" => Value::Dict(Vec::new()),
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                let ints = |v: Option<&Value>| -> Option<Vec<usize>> {
                    match v? {
                        Value::Tuple(t) => t.iter().map(|x| if let Value::Int(i) = x { usize::try_from(*i).ok() } else { None }).collect(),
                        _ => None,
                    }
                };
                let storage = args.first().cloned().ok_or_else(|| self.err("tensor without storage"))?;
                let offset = match args.get(1) {
                    Some(Value::Int(i)) => usize::try_from(*i).map_err(|_| self.err("negative storage offset"))?,
                    _ => return Err(self.err("tensor storage offset is not an integer")),
                };
                let shape = ints(args.get(2)).ok_or_else(|| self.err("tensor size is not a tuple of integers"))?;
                let stride = ints(args.get(3)).ok_or_else(|| self.err("tensor stride is not a tuple of integers"))?;
                Value::Tensor { storage: Box::new(storage), offset, shape, stride }
            }
            _ => Value::Other,
        })
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                0x95 => {
                    self.take(8)?;
                } // FRAME
                b'.' => return self.pop(), // STOP
                b'(' => self.stack.push(Value::Mark),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'N' | 0x88 | 0x89 => self.stack.push(Value::Other),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.err("LONG1 wider than 64 bits"));
                    }
                    let mut a = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xFF; 8] } else { [0; 8] };
                    a[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(a)));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Other);
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c | b'U' => {
                    let n = usize::from(self.u8()?);
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (module, name) else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    self.stack.push(Value::Global(format!("{m}.{n}")));
                }
                b'q' => {
                    let k = u32::from(self.u8()?);
                    self.put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.put(k)?;
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { u32::from(self.u8()?) } else { self.u32()? };
                    self.get(k)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let Value::Tuple(t) = pid else {
                        return Err(self.err("persistent id is not a tuple"));
                    };
                    match (t.first(), t.get(1), t.get(2)) {
                        (Some(Value::Str(s)), Some(Value::Global(dtype)), Some(Value::Str(key))) if s == "storage" => {
                            self.stack.push(Value::Storage(dtype.clone(), key.clone()));
                        }
                        _ => {
                            return Err(self.err("persistent id is not ('storage', type, key, ...)"));
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    self.pop()?; // BUILD: object state (e.g. `_metadata`) is not needed
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.push((k, v)),
                        _ => return Err(self.err("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pos = self.pos;
                    let Value::Dict(d) = self.top()? else {
                        return Err(file_error(self.path, format!("data.pkl at byte {pos}: SETITEMS on a non-dict")));
                    };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Value::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                other => {
                    return Err(self.err(format!("unsupported pickle opcode 0x{other:02x}: not a plain state_dict")));
                }
            }
        }
    }
}

fn dtype_size(name: &str) -> Option<usize> {
    Some(match name.rsplit('.').next()? {
        "FloatStorage" => 4,
        "DoubleStorage" => 8,
        "HalfStorage" | "BFloat16Storage" => 2,
        _ => return None,
    })
}

/// Decodes one element of a storage to f32.
fn element(dtype: &str, b: &[u8]) -> f32 {
    match dtype.rsplit('.').next() {
        Some("DoubleStorage") => f64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as f32,
        Some("HalfStorage") => super::safetensors::f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        Some("BFloat16Storage") => f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
        _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    }
}

/// Reads every floating-point tensor of a `torch.save`d state_dict, by key.
pub fn load_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        file_error(path, format!("not a PyTorch zip archive ({e}); legacy non-zip .pt files are not supported: re-save with torch >= 1.6"))
    })?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| file_error(path, "archive has no data.pkl"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read = |name: &str, limit: u64| -> Result<Vec<u8>> {
        let entry = zip.by_name(name).map_err(|e| file_error(path, format!("archive entry {name}: {e}")))?;
        let mut buf = Vec::new();
        entry.take(limit).read_to_end(&mut buf).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
        Ok(buf)
    };
    let pickle = read(&pkl_name, 64 << 20)?;
    let mut m = Machine { data: &pickle, pos: 0, stack: Vec::new(), memo: HashMap::new(), copied: 0, path };
    let root = m.run()?;
    let Value::Dict(items) = root else {
        return Err(file_error(path, "data.pkl does not hold a dict: save `model.state_dict()`, not the model"));
    };
    let mut out = Vec::new();
    for (k, v) in items {
        let Value::Str(key) = k else { continue };
        let Value::Tensor { storage, offset, shape, stride } = v else {
            continue;
        };
        let Value::Storage(dtype, skey) = *storage else {
            return Err(file_error(path, format!("{key}: tensor without a storage")));
        };
        // Integer buffers (BatchNorm's num_batches_tracked) carry no weights.
        let Some(size) = dtype_size(&dtype) else {
            continue;
        };
        let bad = |what: String| file_error(path, format!("{key}: {what}"));
        if shape.len() != stride.len() {
            return Err(bad(format!("{} sizes but {} strides", shape.len(), stride.len())));
        }
        let numel = super::elements(shape.iter().map(|&d| d as u64))
            .ok_or_else(|| bad(format!("size {shape:?}: more than {} elements", super::MAX_TENSOR_ELEMENTS)))?;
        // The storage bytes the view reaches: up to its last element, offset + sum of
        // (size - 1) * stride; none for an empty tensor.
        let needed = if numel == 0 {
            Some(0)
        } else {
            shape
                .iter()
                .zip(&stride)
                .try_fold(offset, |end, (&n, &s)| end.checked_add((n - 1).checked_mul(s)?))
                .and_then(|last| last.checked_add(1)?.checked_mul(size))
        };
        let needed = needed.ok_or_else(|| bad(format!("offset {offset}, size {shape:?} and stride {stride:?} reach past any storage")))?;
        let bytes = read(&format!("{prefix}data/{skey}"), needed as u64)?;
        if bytes.len() < needed {
            return Err(bad(format!("storage {skey} has {} bytes, the tensor needs {needed}", bytes.len())));
        }
        let mut data = Vec::with_capacity(numel);
        // Walk the strided view in row-major order of `shape` (every index within `needed`).
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..numel {
            let at = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            let b = bytes.get(at * size..(at + 1) * size).ok_or_else(|| bad(format!("storage {skey} is shorter than the tensor needs")))?;
            data.push(element(&dtype, b));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        let t = Tensor::new(shape, data).ok_or_else(|| bad("inconsistent shape".into()))?;
        out.push((key, t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A `torch.save` zip of `pickle` with one storage, `data/0`, of `storage` bytes.
    fn saved(pickle: &[u8], storage: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut zip = zip::ZipWriter::new(file.reopen().expect("reopen"));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [("archive/data.pkl", pickle), ("archive/data/0", storage)] {
            zip.start_file(name, stored).expect("entry");
            zip.write_all(bytes).expect("write");
        }
        zip.finish().expect("finish");
        file
    }

    fn int(v: i64) -> Vec<u8> {
        let mut b = vec![0x8a, 8];
        b.extend(v.to_le_bytes());
        b
    }

    fn text(s: &str) -> Vec<u8> {
        let mut b = vec![b'X'];
        b.extend((s.len() as u32).to_le_bytes());
        b.extend(s.as_bytes());
        b
    }

    /// The pickle torch writes for `{"w": tensor}`: a float tensor on storage `0`.
    fn state_dict(offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}'];
        p.extend(text("w"));
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        p.extend(text("storage"));
        p.extend(b"ctorch\nFloatStorage\n");
        p.extend(text("0"));
        p.extend(text("cpu"));
        p.extend([b't', b'Q']);
        p.extend(int(offset));
        for dims in [shape, stride] {
            p.push(b'(');
            dims.iter().for_each(|&d| p.extend(int(d)));
            p.push(b't');
        }
        p.extend([0x89, b't', b'R', b's', b'.']);
        p
    }

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|f| f.to_le_bytes()).collect()
    }

    #[test]
    fn a_strided_view_reads_in_the_order_of_its_size() {
        // A transposed 2x3 view of a 3x2 storage, one element in.
        let file = saved(&state_dict(1, &[2, 3], &[1, 2]), &floats(&[9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        let got = load_state_dict(file.path()).expect("a valid state_dict");
        assert_eq!(got, vec![("w".to_string(), Tensor::new(vec![2, 3], vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]).expect("tensor"))]);
    }

    #[test]
    fn sizes_and_strides_out_of_range_are_refused_before_reading() {
        let storage = floats(&[1.0; 4]);
        for (shape, stride, offset, says) in [
            (vec![1 << 40], vec![1], 0, "more than 67108864 elements"),
            (vec![1 << 32, 1 << 32], vec![1, 1], 0, "more than 67108864 elements"),
            (vec![4], vec![1 << 62], 0, "reach past any storage"),
            (vec![2], vec![1], i64::MAX, "reach past any storage"),
            (vec![4, 1], vec![1], 0, "2 sizes but 1 strides"),
            (vec![5], vec![1], 0, "has 16 bytes, the tensor needs 20"),
        ] {
            let file = saved(&state_dict(offset, &shape, &stride), &storage);
            let err = load_state_dict(file.path()).expect_err("out of range").to_string();
            assert!(err.contains(says) && err.contains("w:"), "{shape:?} {stride:?} {offset}: {err}");
        }
    }

    #[test]
    fn a_pickle_that_copies_its_own_copies_is_refused_not_grown() {
        // A list, then 40 times: a pair of two copies of the last value, memoized in its place.
        // Each step doubles what a copy costs: 2^40 values if nothing stopped it.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..40 {
            p.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
        }
        p.extend([b'}', b'.']);
        let file = saved(&p, &[]);
        let err = load_state_dict(file.path()).expect_err("a pickle bomb").to_string();
        assert!(err.contains("copies more than"), "{err}");
    }
}
