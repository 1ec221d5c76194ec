//! Helpers shared by the fuzz targets: reading structured choices out of the fuzzer's bytes,
//! and splitting an input into chunks the way reads might deliver it.

/// The fuzzer's bytes, consumed front to back; reads past the end give zeros, so every input
/// means something and a shorter input is a simpler one.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length-prefixed run of bytes (length byte, then up to that many bytes).
    pub fn run(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.bytes(n)
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Splits `data` into chunks of pseudo-random sizes (mostly small, sometimes large), the
/// same for the same `seed`.
pub fn chunks(data: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = match state % 8 {
            0 => 1 + (state >> 8) as usize % 4096,
            _ => 1 + (state >> 8) as usize % 16,
        };
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
