// Contiguous-chunk parallel loops on short-lived std::threads. Threads are created per call
// (tens of microseconds, negligible beside the millisecond kernels that use them) so no
// pool outlives a fork() and nothing competes with FAISS's or Numba's own pools when idle.
#pragma once

#include <cstdint>
#include <functional>

namespace alcore {

// Number of chunks parallel_chunks will use for n items with at least min_per_chunk each.
int planned_chunks(int64_t n, int64_t min_per_chunk);

// Calls fn(chunk, begin, end) for `chunks` contiguous chunks of [0, n) (chunks >= 1, from
// planned_chunks), chunk 0 on the calling thread. Exceptions are rethrown after every chunk
// ended, the lowest chunk's first. The count is a parameter, not re-read from the thread
// limit, so a caller that sized per-chunk buffers with planned_chunks gets exactly that many
// chunks even if set_num_threads runs concurrently.
void run_chunks(int64_t n, int chunks, const std::function<void(int, int64_t, int64_t)>& fn);

// run_chunks(n, planned_chunks(n, min_per_chunk), fn), for callers with no per-chunk state.
void parallel_chunks(int64_t n, int64_t min_per_chunk,
                     const std::function<void(int, int64_t, int64_t)>& fn);

}  // namespace alcore
