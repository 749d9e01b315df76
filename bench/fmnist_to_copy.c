/*
 * fmnist_to_copy: turn a (Fashion-)MNIST idx image/label file pair into
 * PostgreSQL COPY text format on stdout.
 *
 *   fmnist_to_copy IMAGES.gz LABELS.gz [first_id] [limit]
 *
 * Each output line is  id<TAB>{p1,p2,...,pN}<TAB>label  with the pixels
 * scaled to [0,1] (byte/255, printed as the shortest decimal that reads back
 * as the same float4, so a real[] column holds exactly (float) b / 255.0f),
 * ids counting up from first_id (default 1), at most `limit` rows (default:
 * all).  The files are decompressed with "gzip -dc" through popen (no zlib
 * needed); a file not ending in .gz is read as is.  The idx magic numbers
 * (2051 for images, 2049 for labels) and the counts are checked.
 *
 * With FMNIST_TO_COPY_PROGRESS=N in the environment, a line goes to stderr
 * every N rows.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_IMAGES_MAGIC 2051
#define IDX_LABELS_MAGIC 2049

static const char *progname = "fmnist_to_copy";

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", progname);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

typedef struct idx_stream
{
	const char *path;
	FILE	   *fp;
	int			is_pipe;
} idx_stream;

static int
ends_with(const char *s, const char *suffix)
{
	size_t		ls = strlen(s),
				lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void
stream_open(idx_stream *st, const char *path)
{
	st->path = path;
	if (ends_with(path, ".gz"))
	{
		/* single-quote the path for the shell: ' becomes '\'' */
		size_t		n = strlen(path);
		char	   *cmd = malloc(4 * n + 32);
		char	   *p;

		if (cmd == NULL)
			die("out of memory%s", "");
		p = cmd + sprintf(cmd, "gzip -dc -- '");
		for (size_t i = 0; i < n; i++)
		{
			if (path[i] == '\'')
			{
				memcpy(p, "'\\''", 4);
				p += 4;
			}
			else
				*p++ = path[i];
		}
		strcpy(p, "'");
		st->fp = popen(cmd, "r");
		free(cmd);
		st->is_pipe = 1;
		if (st->fp == NULL)
			die("cannot run gzip for %s", path);
	}
	else
	{
		st->fp = fopen(path, "rb");
		st->is_pipe = 0;
		if (st->fp == NULL)
			die("cannot open %s", path);
	}
}

/* Read exactly n bytes or die (a short read means a truncated or bad file). */
static void
stream_read(idx_stream *st, void *buf, size_t n)
{
	if (fread(buf, 1, n, st->fp) != n)
		die("%s: unexpected end of data (truncated file, or gzip failed)", st->path);
}

static uint32_t
stream_u32be(idx_stream *st)
{
	unsigned char b[4];

	stream_read(st, b, 4);
	return ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
		((uint32_t) b[2] << 8) | (uint32_t) b[3];
}

static void
stream_close(idx_stream *st)
{
	char		buf[65536];
	int			rc;

	/* drain, so that gzip ends normally even when we stopped early */
	while (fread(buf, 1, sizeof buf, st->fp) > 0)
		;
	if (ferror(st->fp))
		die("%s: read error", st->path);
	rc = st->is_pipe ? pclose(st->fp) : fclose(st->fp);
	if (rc != 0)
		die("%s: gzip -dc failed (corrupt or missing file?)", st->path);
}

static long
parse_long(const char *s, const char *what)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		die("bad %s (want a non-negative integer)", what);
	return v;
}

int
main(int argc, char **argv)
{
	idx_stream	img,
				lab;
	uint32_t	n_img,
				n_lab,
				rows,
				cols,
				magic;
	size_t		npix;
	long		first_id = 1,
				limit = -1,
				progress = 0,
				n_out;
	unsigned char *labels,
			   *pix;
	char		table[256][16];
	size_t		table_len[256];
	char	   *line;
	const char *env;

	if (argc < 3 || argc > 5)
	{
		fprintf(stderr, "usage: %s IMAGES[.gz] LABELS[.gz] [first_id] [limit]\n", progname);
		return 2;
	}
	if (argc >= 4)
		first_id = parse_long(argv[3], "first_id");
	if (argc >= 5)
		limit = parse_long(argv[4], "limit");
	env = getenv("FMNIST_TO_COPY_PROGRESS");
	if (env != NULL && *env != '\0')
		progress = parse_long(env, "FMNIST_TO_COPY_PROGRESS");

	/* shortest decimal of (float) b / 255 that reads back as that float */
	for (int b = 0; b < 256; b++)
	{
		float		f = (float) b / 255.0f;

		for (int prec = 1; prec <= 9; prec++)
		{
			snprintf(table[b], sizeof table[b], "%.*g", prec, (double) f);
			if (strtof(table[b], NULL) == f)
				break;
		}
		table_len[b] = strlen(table[b]);
	}

	stream_open(&lab, argv[2]);
	magic = stream_u32be(&lab);
	if (magic != IDX_LABELS_MAGIC)
		die("%s: not an idx1 label file (bad magic number)", argv[2]);
	n_lab = stream_u32be(&lab);
	if (n_lab == 0 || n_lab > 100000000u)
		die("%s: implausible label count", argv[2]);
	labels = malloc(n_lab);
	if (labels == NULL)
		die("out of memory%s", "");
	stream_read(&lab, labels, n_lab);
	if (fgetc(lab.fp) != EOF)
		die("%s: trailing data after the last label", argv[2]);
	stream_close(&lab);

	stream_open(&img, argv[1]);
	magic = stream_u32be(&img);
	if (magic != IDX_IMAGES_MAGIC)
		die("%s: not an idx3 image file (bad magic number)", argv[1]);
	n_img = stream_u32be(&img);
	rows = stream_u32be(&img);
	cols = stream_u32be(&img);
	if (n_img != n_lab)
	{
		fprintf(stderr, "%s: %u images but %u labels\n", progname, n_img, n_lab);
		return 1;
	}
	if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
		die("%s: implausible image size", argv[1]);
	npix = (size_t) rows * cols;
	pix = malloc(npix);
	line = malloc(npix * 11 + 64);
	if (pix == NULL || line == NULL)
		die("out of memory%s", "");

	n_out = n_img;
	if (limit >= 0 && limit < n_out)
		n_out = limit;

	for (long i = 0; i < n_out; i++)
	{
		char	   *p = line;

		stream_read(&img, pix, npix);
		p += sprintf(p, "%ld\t{", first_id + i);
		for (size_t k = 0; k < npix; k++)
		{
			if (k > 0)
				*p++ = ',';
			memcpy(p, table[pix[k]], table_len[pix[k]]);
			p += table_len[pix[k]];
		}
		p += sprintf(p, "}\t%u\n", (unsigned) labels[i]);
		if (fwrite(line, 1, (size_t) (p - line), stdout) != (size_t) (p - line))
			die("write error on stdout%s", "");
		if (progress > 0 && (i + 1) % progress == 0)
			fprintf(stderr, "  %ld/%ld rows\n", i + 1, n_out);
	}
	if (n_out == (long) n_img)
	{
		/* whole file: there must be nothing after the last image */
		if (fgetc(img.fp) != EOF)
			die("%s: trailing data after the last image", argv[1]);
	}
	stream_close(&img);
	if (fflush(stdout) != 0)
		die("write error on stdout%s", "");
	free(line);
	free(pix);
	free(labels);
	return 0;
}
