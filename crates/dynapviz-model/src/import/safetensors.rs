//! `.safetensors`: a u64 header length, a JSON header `{name: {dtype, shape, data_offsets}}` and
//! the raw little-endian data. Float dtypes (F64, F32, F16, BF16) are read as f32.

use std::path::Path;

use crate::Tensor;
use crate::error::{ModelError, Result, file_error};

/// IEEE half to single precision.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1F);
    let frac = u32::from(h & 0x3FF);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            sign | ((127 - 15 - shift) << 23) | (((f << (shift + 1)) & 0x3FF) << 13)
        }
        (0x1F, f) => sign | 0x7F80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Reads every float tensor of a safetensors file, by key.
pub fn load(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
    parse(&bytes, path)
}

/// Every float tensor of safetensors `bytes` (a file already in memory, or built into the
/// binary); `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| file_error(path, "shorter than the 8-byte header length"))?;
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| file_error(path, format!("header length {n} exceeds the file")))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| file_error(path, format!("header is not JSON: {e}")))?;
    let data = &bytes[end..];
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| file_error(path, format!("tensor `{name}`: {what}"));
        let dtype = info.get("dtype").and_then(|v| v.as_str()).ok_or_else(|| bad("no dtype"))?;
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|v| v.as_u64().map(|u| u as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("bad shape"))?;
        let offs = info.get("data_offsets").and_then(|v| v.as_array()).ok_or_else(|| bad("no data_offsets"))?;
        let (Some(a), Some(b)) = (offs.first().and_then(|v| v.as_u64()), offs.get(1).and_then(|v| v.as_u64())) else {
            return Err(bad("bad data_offsets"));
        };
        let raw = data.get(a as usize..b as usize).ok_or_else(|| bad("data_offsets outside the file"))?;
        let values: Vec<f32> = match dtype {
            "F32" => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            "F64" => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).collect(),
            "F16" => raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            "BF16" => raw.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect(),
            _ => continue,
        };
        out.push((name.clone(), Tensor::new(shape, values).ok_or_else(|| bad("data size does not match the shape"))?));
    }
    Ok(out)
}
