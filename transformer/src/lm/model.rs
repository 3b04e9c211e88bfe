//! `CharLM`: a decoder-only (GPT-style) language model over characters.
//!
//! x = embed[ids] + pos_embed[0..t]; N pre-LN blocks of causal self-attention and feed-forward;
//! a final layer norm; logits = h·Wᵀ with W = `lm_head.weight`, or `embed.weight` when tied.
//!
//! PyTorch equivalent: the `CharLM` module of `tests/fixtures/lm/charlm.py` — an `nn.Embedding`
//! for tokens and one for positions, an `nn.TransformerEncoder` of `norm_first` layers with a
//! final `nn.LayerNorm`, run with a causal mask, and a bias-free `nn.Linear` head — with the
//! same parameter names, so `model.safetensors` loads into it strictly.

use super::LmConfig;
use crate::nn::{Ctx, EncoderLayer, KvCache, LayerNorm, causal_mask};
use autograd::{Element, Param, ParamStore, Tape, Tensor, Var};
use rand::Rng;

/// The decoder-only language model.
pub struct CharLM<T: Element = f32> {
    /// The hyperparameters.
    pub cfg: LmConfig,
    /// `embed.weight` `[vocab, d]`.
    pub embed: Param<T>,
    /// `pos_embed.weight` `[max_len, d]`.
    pub pos_embed: Param<T>,
    /// `blocks.layers.{i}`: pre-LN causal self-attention and feed-forward.
    pub blocks: Vec<EncoderLayer<T>>,
    /// `blocks.norm`, after the last block.
    pub norm: LayerNorm<T>,
    /// `lm_head.weight` `[vocab, d]`, absent when the head is tied to `embed.weight`.
    pub lm_head: Option<Param<T>>,
}

crate::nn::impl_module!(CharLM { param embed, param pos_embed, modules blocks, module norm, option lm_head });

impl<T: Element> CharLM<T> {
    /// A freshly initialized model whose parameters are added to `store` under PyTorch's names.
    ///
    /// Initialization is PyTorch's for every layer, except that both embeddings are drawn from
    /// N(0, 0.02) (as GPT-2), so a tied head starts with small logits.
    ///
    /// # Panics
    /// If the config is invalid (see [`LmConfig::validate`]).
    pub fn new(cfg: &LmConfig, store: &mut ParamStore<T>, rng: &mut impl Rng) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("CharLM::new: {e}");
        }
        let (d, std) = (cfg.d_model, T::from_f64(0.02));
        let embed = store.prefix("embed").param("weight", Tensor::randn([cfg.vocab_size, d], T::ZERO, std, rng));
        let pos_embed = store.prefix("pos_embed").param("weight", Tensor::randn([cfg.max_len, d], T::ZERO, std, rng));
        let layer = cfg.layer();
        let blocks = (0..cfg.n_layers)
            .map(|i| EncoderLayer::new(&layer, store.prefix("blocks").prefix(&format!("layers.{i}")), rng))
            .collect();
        let norm = LayerNorm::new(d, cfg.layer_norm_eps, store.prefix("blocks").prefix("norm"));
        let bound = T::from_f64(1.0 / (d as f64).sqrt());
        let lm_head = (!cfg.tie_output).then(|| {
            store.prefix("lm_head").param("weight", Tensor::rand_uniform([cfg.vocab_size, d], -bound, bound, rng))
        });
        CharLM { cfg: cfg.clone(), embed, pos_embed, blocks, norm, lm_head }
    }

    // ANCHOR: forward
    /// Token ids `(batch, t)` → logits `(batch, t, vocab)`: position i predicts token i + 1.
    ///
    /// # Panics
    /// If `t` exceeds `max_len` or `ids` does not hold batch·t ids.
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, ids: &[usize], [batch, t]: [usize; 2], ctx: &mut Ctx) -> Var<'t, T> {
        let mut x = self.embed_at(tape, ids, [batch, t], 0); // (batch, t, d)
        let mask = causal_mask::<T>(t); // (1, 1, t, t)
        for block in &self.blocks {
            x = block.forward(x, &mask, ctx);
        }
        self.head(x) // (batch, t, vocab)
    }
    // ANCHOR_END: forward

    /// The next positions of sequences whose earlier positions are in `caches` (one per
    /// block, empty at the start): ids `(batch, t_new)` → logits `(batch, t_new, vocab)`. Their
    /// keys and values join the caches.
    ///
    /// The logits equal, to the bit, the last `t_new` rows of [`CharLM::forward`] on the whole
    /// sequence, at a cost linear in its length instead of quadratic.
    ///
    /// # Panics
    /// If the sequence would exceed `max_len`, or `caches` does not hold one cache per block.
    #[track_caller]
    pub fn forward_cached<'t>(
        &self,
        tape: &'t Tape<T>,
        ids: &[usize],
        [batch, t_new]: [usize; 2],
        caches: &mut [KvCache<T>],
        ctx: &mut Ctx,
    ) -> Var<'t, T> {
        assert_eq!(caches.len(), self.blocks.len(), "CharLM::forward_cached: one cache per block");
        let start = caches[0].len();
        let mut x = self.embed_at(tape, ids, [batch, t_new], start); // (batch, t_new, d)
        // New position i (absolute start + i) sees keys 0..=start + i. A single new position
        // sees every key, and needs no mask at all.
        let total = start + t_new;
        let mask = (t_new > 1).then(|| {
            Tensor::from_fn([1, 1, t_new, total], |k| T::from_f64(f64::from(u8::from(k % total > start + k / total))))
        });
        for (block, cache) in self.blocks.iter().zip(caches) {
            x = block.forward_cached(x, cache, mask.as_ref(), ctx);
        }
        self.head(x)
    }

    /// Token embeddings plus the positions `start..start + t`: `(batch, t, d)`.
    #[track_caller]
    fn embed_at<'t>(&self, tape: &'t Tape<T>, ids: &[usize], [batch, t]: [usize; 2], start: usize) -> Var<'t, T> {
        assert!(
            start + t <= self.cfg.max_len,
            "CharLM: a sequence of {} tokens is longer than max_len = {}",
            start + t,
            self.cfg.max_len
        );
        let tokens = tape.param(&self.embed).embedding(ids, [batch, t]); // (batch, t, d)
        tokens + tape.param(&self.pos_embed).narrow(0, start, t) // (t, d) broadcast over the batch
    }

    /// The final layer norm and the head: `(batch, t, d)` → `(batch, t, vocab)`.
    #[track_caller]
    fn head<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        let w = tape.param(self.lm_head.as_ref().unwrap_or(&self.embed)); // (vocab, d)
        self.norm.forward(x).linear(w, None)
    }

    /// Empty caches, one per block, for [`CharLM::forward_cached`].
    pub fn new_caches(&self) -> Vec<KvCache<T>> {
        (0..self.blocks.len()).map(|_| KvCache::new()).collect()
    }
}
