//! Who owns the objects at a key when `IPC_STAT` is refused: Linux lists every
//! System V object in `/proc/sysvipc/shm` and `/proc/sysvipc/sem`, readable by
//! everyone (the same table `ipcs` prints), so a permission error can still name
//! the owner instead of leaving the user to guess.

use crate::key::IpcKey;

/// The owner uid of the segment (or else the semaphore set) at `key`, from
/// `/proc/sysvipc`; `None` if neither file names it (not Linux, or nothing there).
pub(crate) fn owner(key: IpcKey) -> Option<u32> {
    ["/proc/sysvipc/shm", "/proc/sysvipc/sem"]
        .into_iter()
        .find_map(|path| owner_in(&std::fs::read_to_string(path).ok()?, key.raw()))
}

/// The `uid` column of the row whose `key` column is `key`, in one of those tables
/// (a header line of column names, then one row per object; keys in decimal).
fn owner_in(table: &str, key: i32) -> Option<u32> {
    let mut lines = table.lines();
    let columns: Vec<&str> = lines.next()?.split_whitespace().collect();
    let key_col = columns.iter().position(|&c| c == "key")?;
    let uid_col = columns.iter().position(|&c| c == "uid")?;
    lines.find_map(|line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let row_key: i32 = cells.get(key_col)?.parse().ok()?;
        (row_key == key).then(|| cells.get(uid_col)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::owner_in;

    const SEM: &str =
        "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
1911019651    5898293   644          9  1000     0     0     0          0 1796167739
        -5    5898295   600          9     0     0     0     0 1796167743 1796167743
";

    #[test]
    fn finds_the_uid_of_the_row_with_the_key() {
        assert_eq!(owner_in(SEM, 1911019651), Some(1000));
        assert_eq!(owner_in(SEM, -5), Some(0), "keys are signed decimals");
        assert_eq!(owner_in(SEM, 7), None);
        assert_eq!(owner_in("", 7), None);
        assert_eq!(owner_in("garbage\n1 2 3\n", 1), None);
    }
}
