// Read-only shared memory mappings of a file, as ArrayBuffers: Node has no mmap of its own.
// WHY: Plover hashes a QEMU guest's RAM file at every sync; reading it with pread copies every
// byte once more (about half of a full scan on the development host), a mapping does not.
//
// map(path, offset, length) -> ArrayBuffer over [offset, offset + length) of the file, PROT_READ,
//                              MAP_SHARED (the guest's writes show through).
// unmap(arrayBuffer)         -> detaches the buffer (every view becomes empty) and unmaps it now
//                              instead of at garbage collection.
// Every failure is a JS exception naming the file and the system error; nothing aborts.
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  void *addr;
  size_t length;
  int unmapped;
} mapping_t;

static napi_value throw_error(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

#define CHECK(env, call)                                                                         \
  do {                                                                                           \
    if ((call) != napi_ok) return throw_error((env), "EMAPPEDFILE", "N-API call failed: " #call); \
  } while (0)

static void finalize_mapping(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_t *m = (mapping_t *)hint;
  if (!m->unmapped) munmap(m->addr, m->length);
  free(m);
}

// A JS number that is a non-negative safe integer, or -1.
static int64_t arg_size(napi_env env, napi_value v) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!(d >= 0) || d > 9007199254740991.0 || d != (double)(int64_t)d) return -1;
  return (int64_t)d;
}

static napi_value map_file(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) return throw_error(env, "ERR_INVALID_ARG", "map(path, offset, length) takes three arguments");
  char path[4096];
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok)
    return throw_error(env, "ERR_INVALID_ARG", "map: path must be a string");
  if (path_len >= sizeof path - 1) return throw_error(env, "ERR_INVALID_ARG", "map: path too long");
  int64_t offset = arg_size(env, argv[1]);
  int64_t length = arg_size(env, argv[2]);
  if (offset < 0 || length <= 0)
    return throw_error(env, "ERR_INVALID_ARG", "map: offset must be an integer >= 0 and length > 0");
  long page = sysconf(_SC_PAGESIZE);
  char msg[4400];
  if (offset % page != 0) {
    snprintf(msg, sizeof msg, "map %s: offset %lld is not a multiple of the page size %ld", path,
             (long long)offset, page);
    return throw_error(env, "ERR_INVALID_ARG", msg);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(msg, sizeof msg, "map %s: open: %s", path, strerror(errno));
    return throw_error(env, "EMAPPEDFILE", msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(msg, sizeof msg, "map %s: fstat: %s", path, strerror(errno));
    close(fd);
    return throw_error(env, "EMAPPEDFILE", msg);
  }
  // WHY refuse a short file: touching a mapped page beyond the end of a file raises SIGBUS.
  if (!S_ISREG(st.st_mode) || st.st_size < offset + length) {
    snprintf(msg, sizeof msg, "map %s: %s of %lld bytes, %lld needed (offset %lld + length %lld)", path,
             S_ISREG(st.st_mode) ? "file" : "not a regular file", (long long)st.st_size,
             (long long)(offset + length), (long long)offset, (long long)length);
    close(fd);
    return throw_error(env, "EMAPPEDFILE", msg);
  }
  void *addr = mmap(NULL, (size_t)length, PROT_READ, MAP_SHARED, fd, (off_t)offset);
  int mmap_errno = errno;
  close(fd);  // the mapping keeps its own reference to the file
  if (addr == MAP_FAILED) {
    snprintf(msg, sizeof msg, "map %s: mmap: %s", path, strerror(mmap_errno));
    return throw_error(env, "EMAPPEDFILE", msg);
  }
  mapping_t *m = (mapping_t *)malloc(sizeof *m);
  if (m == NULL) {
    munmap(addr, (size_t)length);
    return throw_error(env, "EMAPPEDFILE", "map: out of memory");
  }
  m->addr = addr;
  m->length = (size_t)length;
  m->unmapped = 0;
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, addr, (size_t)length, finalize_mapping, m, &buffer) != napi_ok) {
    munmap(addr, (size_t)length);
    free(m);
    return throw_error(env, "EMAPPEDFILE", "map: cannot create an external ArrayBuffer");
  }
  // The finalizer needs the mapping again; keep it reachable from the buffer for unmap().
  CHECK(env, napi_wrap(env, buffer, m, NULL, NULL, NULL));
  return buffer;
}

static napi_value unmap_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_ab = false;
  if (argc != 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab)
    return throw_error(env, "ERR_INVALID_ARG", "unmap(buffer) takes the ArrayBuffer map() returned");
  bool detached = false;
  CHECK(env, napi_is_detached_arraybuffer(env, argv[0], &detached));
  if (detached) return NULL;  // unmapped already
  mapping_t *m = NULL;
  if (napi_remove_wrap(env, argv[0], (void **)&m) != napi_ok || m == NULL)
    return throw_error(env, "ERR_INVALID_ARG", "unmap: not a buffer from map()");
  // No JS runs between the munmap and the detach, and after the detach no view reaches the
  // memory. The finalizer (deferred by Node) then only frees the record.
  m->unmapped = 1;
  munmap(m->addr, m->length);
  CHECK(env, napi_detach_arraybuffer(env, argv[0]));
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"map", NULL, map_file, NULL, NULL, NULL, napi_default, NULL},
      {"unmap", NULL, unmap_file, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
