// The local filesystem under the scheme "counting://", counting the calls that become S3
// requests on EMRFS/S3A: getFileStatus (HEAD), listStatus (LIST, one per 1000 entries),
// open (GET). Only calls made by Spark count: calls this class makes to itself (the local
// listStatus stats each child) are not counted twice. Used by benchmarks/s3_requests.py.
package fruits.bench;

import java.io.IOException;
import java.net.URI;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

public class CountingFileSystem extends RawLocalFileSystem {
  private static final ConcurrentHashMap<String, AtomicLong> COUNTS = new ConcurrentHashMap<>();
  private static final ThreadLocal<int[]> DEPTH = ThreadLocal.withInitial(() -> new int[1]);
  private static final URI NAME = URI.create("counting:///");

  @Override
  public String getScheme() {
    return "counting";
  }

  @Override
  public URI getUri() {
    return NAME;
  }

  private static void count(String op, long n) {
    COUNTS.computeIfAbsent(op, k -> new AtomicLong()).addAndGet(n);
  }

  /** "op=n" pairs, comma-separated, in name order. */
  public static String counts() {
    StringBuilder out = new StringBuilder();
    for (var e : new TreeMap<>(COUNTS).entrySet()) {
      if (out.length() > 0) out.append(',');
      out.append(e.getKey()).append('=').append(e.getValue().get());
    }
    return out.toString();
  }

  public static void reset() {
    COUNTS.clear();
  }

  @Override
  public FileStatus getFileStatus(Path p) throws IOException {
    int[] depth = DEPTH.get();
    if (depth[0]++ == 0) count("getFileStatus", 1);
    try {
      return super.getFileStatus(p);
    } finally {
      depth[0]--;
    }
  }

  @Override
  public FileStatus[] listStatus(Path p) throws IOException {
    int[] depth = DEPTH.get();
    boolean top = depth[0]++ == 0;
    try {
      FileStatus[] result = super.listStatus(p);
      if (top) {
        count("listStatus", 1);
        count("listPages", Math.max(1, (result.length + 999) / 1000));
      }
      return result;
    } finally {
      depth[0]--;
    }
  }

  @Override
  public FSDataInputStream open(Path p, int bufferSize) throws IOException {
    int[] depth = DEPTH.get();
    if (depth[0]++ == 0) count("open", 1);
    try {
      return super.open(p, bufferSize);
    } finally {
      depth[0]--;
    }
  }
}
