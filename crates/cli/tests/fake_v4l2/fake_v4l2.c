/*
 * A V4L2 camera in user space, for tests on machines without one (no /dev/video*, no kernel
 * modules for v4l2loopback or vivid). Loaded with LD_PRELOAD into `between`, it answers the
 * calls a V4L2 client makes on the node FAKE_V4L2_PATH (a file named like /dev/videoN):
 * open, the capture ioctls (made through syscall(2) by the v4l crate), mmap, poll, close.
 * Everything else goes to libc.
 *
 * The camera offers YUYV 640x480 at 30 and 15 fps and 1280x720 at 10 fps (what a USB 2
 * webcam offers raw), and streams, in real time, eight colour bars over the top three
 * quarters and a white block moving 8 pixels a picture along the bottom quarter.
 *
 * FAKE_V4L2_PATH=PATH    the node it answers for (required)
 * FAKE_V4L2_BUSY=1       streaming fails with EBUSY, as when another app uses the camera
 * FAKE_V4L2_UNPLUG=N     after N pictures the camera is unplugged (ENODEV, POLLERR)
 * FAKE_V4L2_STALL=N      after N pictures the camera goes quiet (polls time out)
 * FAKE_V4L2_WARMUP_MS=N  each stream's first picture comes N ms after it starts, as USB
 *                        cameras take 0.5-1.5 s
 *
 * Test support only: never linked into the app.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_BUFFERS 8

struct mode { uint32_t width, height, fps; };
static const struct mode MODES[] = { {640, 480, 30}, {640, 480, 15}, {1280, 720, 10} };
#define MODE_COUNT (sizeof(MODES) / sizeof(MODES[0]))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fake_fd = -1;
static uint32_t width = 640, height = 480, fps = 30;
static int streaming;
static uint32_t buffer_count;
static uint8_t *mapped[MAX_BUFFERS];
static int queued[MAX_BUFFERS];
static uint32_t sequence;      /* pictures in this stream (paces it) */
static uint32_t total;         /* pictures since the process started (for UNPLUG/STALL) */
static struct timespec started;

static int is_fake_path(const char *path) {
    const char *node = getenv("FAKE_V4L2_PATH");
    return node && path && strcmp(path, node) == 0;
}

static int open_fake(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd >= 0) {
        pthread_mutex_lock(&lock);
        fake_fd = fd;
        pthread_mutex_unlock(&lock);
    }
    return fd;
}

#define FORWARD_OPEN(name)                                                          \
    int name(const char *path, int flags, ...) {                                   \
        static int (*real)(const char *, int, ...);                                 \
        mode_t mode = 0;                                                           \
        if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {               \
            va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); \
        }                                                                          \
        if (is_fake_path(path)) return open_fake();                                \
        if (!real) real = dlsym(RTLD_NEXT, #name);                                 \
        return real(path, flags, mode);                                            \
    }
FORWARD_OPEN(open)
FORWARD_OPEN(open64)

#define FORWARD_OPENAT(name)                                                        \
    int name(int dir, const char *path, int flags, ...) {                          \
        static int (*real)(int, const char *, int, ...);                           \
        mode_t mode = 0;                                                           \
        if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {               \
            va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); \
        }                                                                          \
        if (is_fake_path(path)) return open_fake();                                \
        if (!real) real = dlsym(RTLD_NEXT, #name);                                 \
        return real(dir, path, flags, mode);                                       \
    }
FORWARD_OPENAT(openat)
FORWARD_OPENAT(openat64)

int close(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "close");
    pthread_mutex_lock(&lock);
    if (fd == fake_fd) {
        fake_fd = -1;
        streaming = 0;
    }
    pthread_mutex_unlock(&lock);
    return real(fd);
}

static uint32_t image_size(void) { return width * height * 2; }

static uint32_t buffer_span(void) {
    long page = sysconf(_SC_PAGESIZE);
    return (image_size() + page - 1) / page * page;
}

static int past(const char *variable) {
    const char *n = getenv(variable);
    return n && total >= (uint32_t)atol(n);
}

static int unplugged(void) { return past("FAKE_V4L2_UNPLUG"); }
static int stalled(void) { return past("FAKE_V4L2_STALL"); }

/* The picture for this sequence number, straight into a mapped buffer. */
static void draw(uint8_t *out, uint32_t number) {
    uint32_t bars_end = height * 3 / 4;
    uint32_t block_x = (number * 8) % (width - 32);
    for (uint32_t y = 0; y < height; y++) {
        uint8_t *row = out + (size_t)y * width * 2;
        for (uint32_t x = 0; x < width; x += 2) {
            uint8_t luma0, luma1, u, v;
            if (y < bars_end) {
                uint32_t bar = x * 8 / width;
                luma0 = luma1 = (uint8_t)(16 + bar * 28);
                u = (uint8_t)(64 + bar * 16);
                v = (uint8_t)(192 - bar * 16);
            } else {
                luma0 = (x >= block_x && x < block_x + 32) ? 235 : 16;
                luma1 = (x + 1 >= block_x && x + 1 < block_x + 32) ? 235 : 16;
                u = v = 128;
            }
            row[x * 2] = luma0;
            row[x * 2 + 1] = u;
            row[x * 2 + 2] = luma1;
            row[x * 2 + 3] = v;
        }
    }
}

static struct timespec due(uint32_t number) {
    struct timespec t = started;
    const char *warmup = getenv("FAKE_V4L2_WARMUP_MS");
    uint64_t ns = (uint64_t)number * 1000000000ull / fps
                  + (warmup ? (uint64_t)atol(warmup) * 1000000ull : 0);
    t.tv_sec += (time_t)(ns / 1000000000ull);
    t.tv_nsec += (long)(ns % 1000000000ull);
    if (t.tv_nsec >= 1000000000L) { t.tv_sec += 1; t.tv_nsec -= 1000000000L; }
    return t;
}

static int fit_mode(uint32_t w, uint32_t h) {
    for (unsigned i = 0; i < MODE_COUNT; i++)
        if (MODES[i].width == w && MODES[i].height == h) return (int)i;
    return 0;
}

static void fill_format(struct v4l2_format *f) {
    memset(&f->fmt.pix, 0, sizeof f->fmt.pix);
    f->fmt.pix.width = width;
    f->fmt.pix.height = height;
    f->fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
    f->fmt.pix.field = V4L2_FIELD_NONE;
    f->fmt.pix.bytesperline = width * 2;
    f->fmt.pix.sizeimage = image_size();
    f->fmt.pix.colorspace = V4L2_COLORSPACE_SRGB;
}

static int fail(int error) { errno = error; return -1; }

static int fake_ioctl(unsigned long request, void *arg) {
    switch (request) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        strcpy((char *)c->driver, "between-fake");
        strcpy((char *)c->card, "Between Test Camera");
        strcpy((char *)c->bus_info, "platform:between-fake");
        c->version = 0x060100;
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *d = arg;
        if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index > 0) return fail(EINVAL);
        d->flags = 0;
        strcpy((char *)d->description, "YUYV 4:2:2");
        d->pixelformat = V4L2_PIX_FMT_YUYV;
        return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        if (s->pixel_format != V4L2_PIX_FMT_YUYV || s->index > 1) return fail(EINVAL);
        s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        s->discrete.width = s->index == 0 ? 640 : 1280;
        s->discrete.height = s->index == 0 ? 480 : 720;
        return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *e = arg;
        unsigned seen = 0;
        if (e->pixel_format != V4L2_PIX_FMT_YUYV) return fail(EINVAL);
        for (unsigned i = 0; i < MODE_COUNT; i++) {
            if (MODES[i].width != e->width || MODES[i].height != e->height) continue;
            if (seen++ == e->index) {
                e->type = V4L2_FRMIVAL_TYPE_DISCRETE;
                e->discrete.numerator = 1;
                e->discrete.denominator = MODES[i].fps;
                return 0;
            }
        }
        return fail(EINVAL);
    }
    case VIDIOC_G_FMT:
    case VIDIOC_S_FMT:
    case VIDIOC_TRY_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
        if (request != VIDIOC_G_FMT) {
            const struct mode *m = &MODES[fit_mode(f->fmt.pix.width, f->fmt.pix.height)];
            if (request == VIDIOC_TRY_FMT) {
                uint32_t w = width, h = height;
                width = m->width;
                height = m->height;
                fill_format(f);
                width = w;
                height = h;
                return 0;
            }
            if (streaming || buffer_count) return fail(EBUSY);
            if (m->width != width || m->height != height) fps = m->fps;
            width = m->width;
            height = m->height;
        }
        fill_format(f);
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
        if (request == VIDIOC_S_PARM) {
            struct v4l2_fract t = p->parm.capture.timeperframe;
            uint32_t wanted = t.numerator ? t.denominator / t.numerator : 30;
            for (unsigned i = 0; i < MODE_COUNT; i++)
                if (MODES[i].width == width && MODES[i].height == height && MODES[i].fps == wanted)
                    fps = wanted;
        }
        memset(&p->parm.capture, 0, sizeof p->parm.capture);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = fps;
        p->parm.capture.readbuffers = 0;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *r = arg;
        if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP)
            return fail(EINVAL);
        if (getenv("FAKE_V4L2_BUSY") && r->count > 0) return fail(EBUSY);
        if (r->count > MAX_BUFFERS) r->count = MAX_BUFFERS;
        buffer_count = r->count;
        memset(queued, 0, sizeof queued);
        return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF:
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->memory != V4L2_MEMORY_MMAP)
            return fail(EINVAL);
        if (request == VIDIOC_DQBUF) {
            if (!streaming) return fail(EINVAL);
            if (unplugged()) return fail(ENODEV);
            if (stalled()) return fail(EAGAIN);
            struct timespec now, when = due(sequence);
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec < when.tv_sec || (now.tv_sec == when.tv_sec && now.tv_nsec < when.tv_nsec))
                return fail(EAGAIN);
            unsigned i;
            for (i = 0; i < buffer_count && !queued[i]; i++) {}
            if (i == buffer_count || !mapped[i]) return fail(EAGAIN);
            queued[i] = 0;
            draw(mapped[i], sequence);
            b->index = i;
            b->sequence = sequence++;
            total++;
            b->timestamp.tv_sec = now.tv_sec;
            b->timestamp.tv_usec = now.tv_nsec / 1000;
        } else {
            if (b->index >= buffer_count) return fail(EINVAL);
            if (request == VIDIOC_QBUF) queued[b->index] = 1;
        }
        b->length = image_size();
        b->bytesused = image_size();
        b->m.offset = b->index * buffer_span();
        b->field = V4L2_FIELD_NONE;
        b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        return 0;
    }
    case VIDIOC_STREAMON:
        if (unplugged()) return fail(ENODEV);
        streaming = 1;
        sequence = 0;
        clock_gettime(CLOCK_MONOTONIC, &started);
        return 0;
    case VIDIOC_STREAMOFF:
        streaming = 0;
        memset(queued, 0, sizeof queued);
        return 0;
    default:
        return fail(ENOTTY);
    }
}

long syscall(long number, ...) {
    static long (*real)(long, ...);
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_ioctl) {
        pthread_mutex_lock(&lock);
        if ((int)a1 == fake_fd && fake_fd >= 0) {
            int result = fake_ioctl((unsigned long)a2, (void *)a3);
            int saved = errno;
            pthread_mutex_unlock(&lock);
            errno = saved;
            return result;
        }
        pthread_mutex_unlock(&lock);
    }
    if (!real) real = dlsym(RTLD_NEXT, "syscall");
    return real(number, a1, a2, a3, a4, a5, a6);
}

int ioctl(int fd, unsigned long request, ...) {
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    pthread_mutex_lock(&lock);
    if (fd == fake_fd && fake_fd >= 0) {
        int result = fake_ioctl(request, arg);
        int saved = errno;
        pthread_mutex_unlock(&lock);
        errno = saved;
        return result;
    }
    pthread_mutex_unlock(&lock);
    if (!real) real = dlsym(RTLD_NEXT, "ioctl");
    return real(fd, request, arg);
}

#define FORWARD_MMAP(name)                                                          \
    void *name(void *addr, size_t length, int prot, int flags, int fd, off_t offset) { \
        static void *(*real)(void *, size_t, int, int, int, off_t);                \
        if (!real) real = dlsym(RTLD_NEXT, #name);                                 \
        pthread_mutex_lock(&lock);                                                 \
        int ours = fd == fake_fd && fake_fd >= 0;                                  \
        pthread_mutex_unlock(&lock);                                               \
        if (!ours) return real(addr, length, prot, flags, fd, offset);             \
        uint32_t index = (uint32_t)(offset / buffer_span());                       \
        if (index >= buffer_count) { errno = EINVAL; return MAP_FAILED; }          \
        void *memory = real(NULL, length, PROT_READ | PROT_WRITE,                  \
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);                   \
        if (memory != MAP_FAILED) {                                                \
            pthread_mutex_lock(&lock);                                             \
            mapped[index] = memory;                                                \
            pthread_mutex_unlock(&lock);                                           \
        }                                                                          \
        return memory;                                                             \
    }
FORWARD_MMAP(mmap)
FORWARD_MMAP(mmap64)

int munmap(void *addr, size_t length) {
    static int (*real)(void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "munmap");
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < MAX_BUFFERS; i++)
        if (mapped[i] == addr) mapped[i] = NULL;
    pthread_mutex_unlock(&lock);
    return real(addr, length);
}

int poll(struct pollfd *fds, nfds_t count, int timeout) {
    static int (*real)(struct pollfd *, nfds_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "poll");
    pthread_mutex_lock(&lock);
    int ours = count == 1 && fds[0].fd == fake_fd && fake_fd >= 0;
    int live = streaming;
    int gone = unplugged();
    int quiet = stalled();
    struct timespec when = due(sequence);
    pthread_mutex_unlock(&lock);
    if (!ours) return real(fds, count, timeout);
    if (gone) { fds[0].revents = POLLERR; return 1; }
    if (!live || quiet) {
        /* Nothing will come: wait out the timeout, as a silent camera would. */
        if (timeout > 0) {
            struct timespec wait = { timeout / 1000, (long)(timeout % 1000) * 1000000L };
            while (nanosleep(&wait, &wait) == -1 && errno == EINTR) {}
        }
        fds[0].revents = 0;
        return 0;
    }
    /* Sleep until the next picture is due: a camera delivers at its own rate. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, NULL) == EINTR) {}
    fds[0].revents = POLLIN;
    return 1;
}
