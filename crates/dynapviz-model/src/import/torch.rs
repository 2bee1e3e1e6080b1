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

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
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
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { u32::from(self.u8()?) } else { self.u32()? };
                    let v = self.memo.get(&k).cloned().ok_or_else(|| self.err(format!("memo {k} unset")))?;
                    self.stack.push(v);
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
    let mut m = Machine { data: &pickle, pos: 0, stack: Vec::new(), memo: HashMap::new(), path };
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
        let bytes = read(&format!("{prefix}data/{skey}"), 1 << 32)?;
        let numel: usize = shape.iter().product();
        let mut data = Vec::with_capacity(numel);
        // Walk the strided view in row-major order of `shape`.
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..numel {
            let at = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            let b = bytes
                .get(at * size..(at + 1) * size)
                .ok_or_else(|| file_error(path, format!("{key}: storage {skey} is shorter than the tensor needs")))?;
            data.push(element(&dtype, b));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        let t = Tensor::new(shape, data).ok_or_else(|| file_error(path, format!("{key}: inconsistent shape")))?;
        out.push((key, t));
    }
    Ok(out)
}
