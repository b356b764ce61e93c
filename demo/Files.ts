/** File reading shared by the journal and the instance lock. */
import * as fs from "node:fs"

/** Read the first `size` bytes of `fd` from offset 0 (fewer if the file is shorter): a short read is retried. */
export const readAll = (fd: number, size: number): Buffer => {
  const buffer = Buffer.alloc(size)
  let offset = 0
  while (offset < size) {
    const n = fs.readSync(fd, buffer, offset, size - offset, offset)
    if (n === 0) break
    offset += n
  }
  return buffer.subarray(0, offset)
}
