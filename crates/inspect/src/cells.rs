//! The ring as rows of cells that fit a box: one cell per slot when there is room,
//! otherwise one cell per 2, 4, 8... slots, so that a ring of 1024 slots still fits
//! a few rows of an 80-column terminal. `H` and `T` mark HEAD and TAIL under the
//! rows that contain them.

use shm_common::view::{Cell, RingInfo};

/// The picture, fitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Slots per cell (a power of two; 1 when every slot has its own cell).
    pub scale: u32,
    /// The rows, first slot first.
    pub rows: Vec<Row>,
}

/// One row of cells, and the line of marks under it, if HEAD or TAIL is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Index of the first slot drawn in the row.
    pub first_slot: u32,
    /// One glyph per cell.
    pub cells: String,
    /// `H`, `T` or `*` (both) under the cells holding HEAD and TAIL; `None` when
    /// neither is in this row.
    pub marks: Option<String>,
}

/// The glyph of a cell that stands for several slots: `w` or `r` if any of them is
/// held mid-batch (rare and short, so never hidden), else `#` all filled, `.` all
/// free, `:` some of each (there are at most two such cells: at HEAD and at TAIL).
pub const MIXED: char = ':';

/// Fits `ring` in at most `max_rows` rows of at most `max_cells` cells. A row holds
/// a power of two cells (64 on an 80-column terminal, 32 on a half-width one), so
/// that with the power-of-two scale the slot numbers at the rows' left are round.
pub fn fit(ring: &RingInfo, max_cells: usize, max_rows: usize) -> Picture {
    let slots = ring.cells.len().max(1);
    let max_rows = max_rows.max(1);
    let per_row = if max_cells >= 8 {
        1 << max_cells.ilog2()
    } else {
        max_cells.max(1)
    };
    let mut scale = 1usize;
    while slots.div_ceil(scale) > per_row * max_rows && scale < slots {
        scale *= 2;
    }
    let glyphs: Vec<char> = ring.cells.chunks(scale).map(glyph).collect();
    let cell_of = |slot: u32| slot as usize / scale;
    let (head, tail) = (cell_of(ring.head), cell_of(ring.tail));
    let rows = glyphs
        .chunks(per_row)
        .enumerate()
        .map(|(i, chunk)| {
            let start = i * per_row;
            let mut marks = vec![' '; chunk.len()];
            for (pos, ch) in [(tail, 'T'), (head, 'H')] {
                if (start..start + chunk.len()).contains(&pos) {
                    let m = &mut marks[pos - start];
                    *m = if *m == ' ' { ch } else { '*' };
                }
            }
            let marked = marks.iter().any(|&c| c != ' ');
            Row {
                first_slot: (start * scale) as u32,
                cells: chunk.iter().collect(),
                marks: marked.then(|| marks.into_iter().collect::<String>().trim_end().to_string()),
            }
        })
        .collect();
    Picture {
        scale: scale as u32,
        rows,
    }
}

/// The glyph for a run of slots (see [`MIXED`]).
fn glyph(cells: &[Cell]) -> char {
    let has = |c: Cell| cells.contains(&c);
    if has(Cell::Writing) {
        'w'
    } else if has(Cell::Reading) {
        'r'
    } else if cells.iter().all(|&c| c == Cell::Filled) {
        '#'
    } else if cells.iter().all(|&c| c == Cell::Free) {
        '.'
    } else {
        MIXED
    }
}

/// How many rows [`fit`] draws (marks included) for these limits.
pub fn height(p: &Picture) -> usize {
    p.rows.len() + p.rows.iter().filter(|r| r.marks.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_common::layout::sem;

    fn ring(slots: u32, free: u16, filled: u16, head: u16, tail: u16) -> RingInfo {
        let mut v = vec![0u16; sem::COUNT];
        v[usize::from(sem::FREE)] = free;
        v[usize::from(sem::FILLED)] = filled;
        v[usize::from(sem::HEAD)] = head;
        v[usize::from(sem::TAIL)] = tail;
        v[usize::from(sem::WRITE_MUTEX)] = 1;
        v[usize::from(sem::READ_MUTEX)] = 1;
        RingInfo::from_sems(slots, &v).expect("a ring")
    }

    #[test]
    fn a_small_ring_is_one_row_at_scale_one() {
        let p = fit(&ring(16, 16, 0, 0, 0), 64, 6);
        assert_eq!(p.scale, 1);
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].cells, "................");
        assert_eq!(p.rows[0].marks.as_deref(), Some("*"));
    }

    #[test]
    fn a_big_ring_is_scaled_to_fit() {
        // 1024 slots, 300 filled from TAIL 100 to HEAD 400.
        let r = ring(1024, 724, 300, 400, 100);
        let p = fit(&r, 72, 6);
        assert_eq!(p.scale, 4, "{p:?}");
        assert!(p.rows.len() <= 6);
        assert!(p.rows.iter().all(|row| row.cells.len() <= 64));
        assert_eq!(p.rows[1].first_slot, 256);
        let all: String = p.rows.iter().map(|r| r.cells.as_str()).collect();
        assert_eq!(all.len(), 256);
        assert_eq!(&all[25..100], "#".repeat(75));
        assert_eq!(&all[100..], ".".repeat(156));
        let marks: Vec<_> = p.rows.iter().filter_map(|r| r.marks.clone()).collect();
        assert_eq!(marks.len(), 2, "{p:?}");
        assert!(height(&p) <= 8);
    }

    #[test]
    fn mixed_cells_are_marked() {
        let r = ring(64, 61, 3, 5, 2);
        let p = fit(&r, 8, 2);
        assert_eq!(p.scale, 4);
        assert_eq!(p.rows[0].cells, "::......");
    }
}
