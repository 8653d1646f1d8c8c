//! The little-endian building blocks of the flight recorder's records and snapshots: what is
//! written, and a reader that refuses short or oversized input with a reason, never a panic.

pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u128(out: &mut Vec<u8>, value: u128) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or("ends early")?;
        self.0 = rest;
        Ok(*head)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        let (head, rest) = self.0.split_at_checked(len).ok_or("ends early")?;
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(crate) fn u128(&mut self) -> Result<u128, &'static str> {
        Ok(u128::from_le_bytes(self.take()?))
    }

    /// A count of items of `size` bytes each, refused if the record cannot hold them.
    pub(crate) fn len(&mut self, size: usize) -> Result<usize, &'static str> {
        let count = self.u32()? as usize;
        self.check_len(count, size)
    }

    pub(crate) fn check_len(&self, count: usize, size: usize) -> Result<usize, &'static str> {
        if count.saturating_mul(size) > self.0.len() {
            return Err("a count larger than the record");
        }
        Ok(count)
    }

    pub(crate) fn list<T>(
        &mut self,
        size: usize,
        item: impl Fn(&mut Self) -> Result<T, &'static str>,
    ) -> Result<Vec<T>, &'static str> {
        let count = self.len(size)?;
        (0..count).map(|_| item(self)).collect()
    }
}
