//! The ledger of every payload: how often its UE transmitted it, how often
//! the EESE delivered it, how often the EESE sent its echo and how often the
//! UE received that. Each side keeps its own columns (no locking while the
//! run goes); at the end they are compared: a payload delivered more often
//! than it was transmitted, or an echo received more often than it was sent,
//! is a duplicate no network fault explains.

/// Where each UE's payloads sit in a column: payload `k` of UE `ue` is row
/// `start[ue] + k`.
#[derive(Clone, Debug)]
pub struct Layout {
    start: Vec<usize>,
    totals: Vec<u32>,
    rows: usize,
}

impl Layout {
    /// `totals[ue]` payloads for each UE.
    #[must_use]
    pub fn new(totals: &[u32]) -> Self {
        let mut start = Vec::with_capacity(totals.len());
        let mut at = 0usize;
        for &t in totals {
            start.push(at);
            at += t as usize;
        }
        Layout {
            start,
            totals: totals.to_vec(),
            rows: at,
        }
    }

    /// Rows in all.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Payloads of UE `ue`.
    #[must_use]
    pub fn total(&self, ue: u32) -> u32 {
        self.totals.get(ue as usize).copied().unwrap_or(0)
    }

    /// Payloads per UE.
    #[must_use]
    pub fn totals(&self) -> &[u32] {
        &self.totals
    }

    /// The row of payload `k` of UE `ue`, if that payload exists.
    #[must_use]
    pub fn row(&self, ue: u32, k: u32) -> Option<usize> {
        let start = *self.start.get(ue as usize)?;
        (k < self.total(ue)).then_some(start + k as usize)
    }
}

/// One column: a count per payload.
#[derive(Clone, Debug)]
pub struct Column(Vec<u16>);

impl Column {
    /// A column of zeros for `layout`.
    #[must_use]
    pub fn new(layout: &Layout) -> Self {
        Column(vec![0; layout.rows()])
    }

    /// Counts one more at `row`.
    pub fn add(&mut self, row: usize) {
        if let Some(c) = self.0.get_mut(row) {
            *c = c.saturating_add(1);
        }
    }

    /// The count at `row`.
    #[must_use]
    pub fn get(&self, row: usize) -> u16 {
        self.0.get(row).copied().unwrap_or(0)
    }
}

/// What comparing the columns found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Payloads never echoed back to their UE.
    pub never_echoed: u64,
    /// Deliveries at the EESE beyond the times the UE transmitted the payload.
    pub extra_deliveries: u64,
    /// Echoes received beyond the times the EESE sent them.
    pub extra_echoes: u64,
    /// Payloads the EESE delivered more than once (each explained by as many
    /// transmissions).
    pub redelivered: u64,
}

/// Compares the four columns row by row.
#[must_use]
pub fn compare(
    transmitted: &Column,
    delivered: &Column,
    echoed: &Column,
    received: &Column,
) -> Findings {
    let mut f = Findings::default();
    for row in 0..transmitted.0.len() {
        let (tx, dl) = (transmitted.get(row), delivered.get(row));
        let (ex, rx) = (echoed.get(row), received.get(row));
        if rx == 0 {
            f.never_echoed += 1;
        }
        f.extra_deliveries += u64::from(dl.saturating_sub(tx));
        f.extra_echoes += u64::from(rx.saturating_sub(ex));
        if dl > 1 {
            f.redelivered += 1;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_per_ue_and_extra_copies_are_found() {
        let l = Layout::new(&[2, 0, 3]);
        assert_eq!(l.rows(), 5);
        assert_eq!(l.row(0, 1), Some(1));
        assert_eq!(l.row(1, 0), None);
        assert_eq!(l.row(2, 2), Some(4));
        assert_eq!(l.row(2, 3), None);
        assert_eq!(l.row(3, 0), None);
        let (mut tx, mut dl, mut ex, mut rx) = (
            Column::new(&l),
            Column::new(&l),
            Column::new(&l),
            Column::new(&l),
        );
        for row in 0..5 {
            tx.add(row);
            dl.add(row);
            ex.add(row);
            rx.add(row);
        }
        assert_eq!(compare(&tx, &dl, &ex, &rx), Findings::default());
        dl.add(3);
        rx.add(4);
        let f = compare(&tx, &dl, &ex, &rx);
        assert_eq!(
            (f.extra_deliveries, f.extra_echoes, f.redelivered),
            (1, 1, 1)
        );
        tx.add(3);
        assert_eq!(compare(&tx, &dl, &ex, &rx).extra_deliveries, 0);
    }
}
