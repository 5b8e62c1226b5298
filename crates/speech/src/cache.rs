//! Content-addressed cache of synthesised sentences. Static prompt parts
//! ("您好，这里是…") are synthesised once per engine, style, language and
//! rate; the personalised sentences around them are not cached by accident
//! because the key is the exact text.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use waihu_audio::script::Chunk;
use waihu_audio::style::Style;

/// SHA-256 over everything that changes the audio.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn new(engine_id: &str, chunk: &Chunk, style: &Style, rate: u32) -> Self {
        let mut h = Sha256::new();
        for part in [
            engine_id.as_bytes(),
            chunk.lang.code().as_bytes(),
            chunk.text.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(style.pitch.to_le_bytes());
        h.update(style.speed.to_le_bytes());
        h.update(style.range.to_le_bytes());
        h.update(rate.to_le_bytes());
        CacheKey(h.finalize().into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
}

struct Inner {
    map: HashMap<CacheKey, Arc<[i16]>>,
    order: VecDeque<CacheKey>,
    bytes: usize,
    stats: CacheStats,
}

/// In-memory cache with a byte budget (oldest entries evicted first) and an
/// optional directory of raw little-endian PCM files that survives restarts.
pub struct TtsCache {
    inner: Mutex<Inner>,
    budget: usize,
    dir: Option<PathBuf>,
}

impl TtsCache {
    pub fn in_memory(budget_bytes: usize) -> Self {
        TtsCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                stats: CacheStats::default(),
            }),
            budget: budget_bytes,
            dir: None,
        }
    }

    /// Memory cache backed by `dir` (created if missing).
    pub fn with_dir(budget_bytes: usize, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut c = TtsCache::in_memory(budget_bytes);
        c.dir = Some(dir.to_path_buf());
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map; keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, key: &CacheKey) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}.pcm", key.hex())))
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<[i16]>> {
        {
            let mut g = self.lock();
            if let Some(v) = g.map.get(key).cloned() {
                g.stats.hits += 1;
                return Some(v);
            }
        }
        let from_disk = self
            .file(key)
            .and_then(|p| std::fs::read(p).ok())
            .filter(|b| b.len() % 2 == 0)
            .map(|b| {
                let s: Arc<[i16]> = b
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                s
            });
        let mut g = self.lock();
        match from_disk {
            Some(v) => {
                g.stats.hits += 1;
                drop(g);
                self.insert_mem(key.clone(), v.clone());
                Some(v)
            }
            None => {
                g.stats.misses += 1;
                None
            }
        }
    }

    pub fn put(&self, key: &CacheKey, audio: Arc<[i16]>) -> Result<(), String> {
        if let Some(p) = self.file(key) {
            let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
            // Write then rename, so a crash never leaves a truncated entry under the final name.
            // The temporary name is unique: two threads synthesising the same sentence
            // at once must not rename each other's file away.
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = p.with_extension(format!("{}-{n}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, &p))
                .map_err(|e| format!("writing {}: {e}", p.display()))?;
        }
        self.insert_mem(key.clone(), audio);
        Ok(())
    }

    fn insert_mem(&self, key: CacheKey, audio: Arc<[i16]>) {
        let size = audio.len() * 2;
        if size > self.budget {
            return;
        }
        let mut g = self.lock();
        if let Some(old) = g.map.insert(key.clone(), audio) {
            g.bytes -= old.len() * 2;
        } else {
            g.order.push_back(key);
        }
        g.bytes += size;
        while g.bytes > self.budget {
            let Some(k) = g.order.pop_front() else { break };
            if let Some(v) = g.map.remove(&k) {
                g.bytes -= v.len() * 2;
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            entries: g.map.len(),
            bytes: g.bytes,
            ..g.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_audio::script::Lang;

    fn key(text: &str) -> CacheKey {
        CacheKey::new(
            "e",
            &Chunk {
                lang: Lang::Zh,
                text: text.into(),
            },
            &Style::NEUTRAL,
            8000,
        )
    }

    #[test]
    fn keys_separate_fields() {
        // Length-prefixed parts: moving a character between fields changes the key.
        let a = CacheKey::new(
            "ab",
            &Chunk {
                lang: Lang::Zh,
                text: "c".into(),
            },
            &Style::NEUTRAL,
            8000,
        );
        let b = CacheKey::new(
            "a",
            &Chunk {
                lang: Lang::Zh,
                text: "bc".into(),
            },
            &Style::NEUTRAL,
            8000,
        );
        assert_ne!(a, b);
        assert_ne!(
            key("x"),
            CacheKey::new(
                "e",
                &Chunk {
                    lang: Lang::En,
                    text: "x".into()
                },
                &Style::NEUTRAL,
                8000
            )
        );
    }

    #[test]
    fn evicts_oldest_over_budget() {
        let c = TtsCache::in_memory(100);
        c.put(&key("a"), vec![0i16; 30].into()).unwrap();
        c.put(&key("b"), vec![0i16; 30].into()).unwrap();
        assert!(c.get(&key("a")).is_none());
        assert!(c.get(&key("b")).is_some());
        assert_eq!(c.stats().bytes, 60);
    }

    #[test]
    fn disk_entries_survive_a_new_cache() {
        let dir = tempfile::tempdir().unwrap();
        let c = TtsCache::with_dir(1 << 20, dir.path()).unwrap();
        c.put(&key("您好"), vec![1i16, -2, 3].into()).unwrap();
        let c2 = TtsCache::with_dir(1 << 20, dir.path()).unwrap();
        assert_eq!(&*c2.get(&key("您好")).unwrap(), &[1i16, -2, 3]);
        assert_eq!(c2.stats().hits, 1);
        assert!(c2.get(&key("别的")).is_none());
        assert_eq!(c2.stats().misses, 1);
    }
}
