/*
 * winograd.c: the transforms of Winograd's F(2x2, 3x3) for the 3 x 3,
 * stride 1, same-padding convolutions with more than one input channel.
 *
 * The output is cut in 2 x 2 tiles, each read from the 4 x 4 input patch
 * around it (zeros outside the image).  With V = B^T d B per patch and
 * channel, U = G g G^T per filter and channel pair, and for each of the 16
 * positions xi of the 4 x 4 transformed tiles one product
 * M[xi] = V[xi] U[xi]^T (tiles x c_in by c_in x c_out, conv.c's sgemm),
 * the tile's output is A^T M A: 16 multiplications per tile and channel pair
 * instead of 36.  The backward passes are the transposes of these linear
 * maps: dM = A dY A^T, dV[xi] = dM[xi] U[xi], the input gradient
 * B dV B^T (tiles overlap: added), dU[xi] = dM[xi]^T V[xi] and the
 * weight gradient G^T dU G.
 *
 * Layouts: V and dV are [xi][tile][c_in], M and dM [xi][tile][c_out], U and
 * dU [xi][c_out][c_in]; tiles run over the images of a chunk, then rows and
 * columns of tiles.  Every transform loops over channels innermost, so the
 * compiler vectorises it.
 */
#include <string.h>

#include "nn_internal.h"

/* Tiles of one image: ceil(h / 2) x ceil(w / 2). */
static int
tiles_x(const nn_stage *st)
{
	return (st->w_out + 1) / 2;
}

size_t
nn_wino_tiles(const nn_stage *st)
{
	return (size_t) ((st->h_out + 1) / 2) * tiles_x(st);
}

/* What a tile walk hands each tile: the stage, its chunk's buffers and where they sit. */
typedef struct tile_walk
{
	const nn_stage *st;
	const nn_layout *lay;		/* the input's layout (input transforms) */
	float	   *img;			/* the chunk's input, its gradient, or its output (HWC) */
	size_t		img_size;		/* floats of one image of img */
	float	   *tiles;			/* V, dV, M or dM: [xi][tile][channel] */
	size_t		xs;				/* stride between the 16 positions of tiles */
	float	   *patch;			/* scratch: one 4 x 4 x c_in patch */
} tile_walk;

typedef void (*tile_fn) (const tile_walk *w, float *image, int ty, int tx, size_t t);

/* Call fn on every tile of `rows` images in order (image, tile row, tile column); t counts them. */
static void
for_tiles(const tile_walk *w, int rows, tile_fn fn)
{
	size_t		t = 0;

	for (int i = 0; i < rows; i++)
		for (int ty = 0; ty < (w->st->h_out + 1) / 2; ty++)
			for (int tx = 0; tx < tiles_x(w->st); tx++, t++)
				fn(w, w->img + (size_t) i * w->img_size, ty, tx, t);
}

static int	wino_enabled = 1;

/*
 * Turn Winograd off (0) or on (1, the default) for the conv stages it
 * applies to: the unit tests' and benchmarks' comparison with im2col.  Set
 * it between calls only; a workspace sized with it on serves either way.
 */
void
nn_wino_set_enabled(int on)
{
	wino_enabled = on;
}

/* Whether a stage may use Winograd (3 x 3, more than one input channel), enabled or not. */
int
nn_wino_fits(const nn_stage *st)
{
	return st->kind == NN_STAGE_CONV && st->size == 3 && st->c_in > 1;
}

/* Whether a stage uses Winograd now. */
int
nn_wino_applies(const nn_stage *st)
{
	return wino_enabled && nn_wino_fits(st);
}

/* U = G g G^T for every filter and input channel; the weights are c_out x (ky, kx, ci). */
void
nn_wino_filters(const nn_stage *st, const float *w, float *U)
{
	int			C = st->c_in,
				CO = st->c_out;
	size_t		xs = (size_t) CO * C;	/* stride between the 16 positions */

	for (int co = 0; co < CO; co++)
		for (int c = 0; c < C; c++)
		{
			const float *g = w + (size_t) co * 9 * C + c;
			float		t[4][3];

			/* rows: G g (4 x 3) */
			for (int j = 0; j < 3; j++)
			{
				float		g0 = g[(0 * 3 + j) * C],
							g1 = g[(1 * 3 + j) * C],
							g2 = g[(2 * 3 + j) * C];

				t[0][j] = g0;
				t[1][j] = 0.5f * (g0 + g1 + g2);
				t[2][j] = 0.5f * (g0 - g1 + g2);
				t[3][j] = g2;
			}
			/* columns: (G g) G^T */
			for (int a = 0; a < 4; a++)
			{
				float	   *dst = U + (size_t) (a * 4) * xs + (size_t) co * C + c;

				dst[0] = t[a][0];
				dst[xs] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
				dst[2 * xs] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
				dst[3 * xs] = t[a][2];
			}
		}
}

/* grad += G^T dU G, the weight gradient from the transformed one. */
void
nn_wino_filters_grad(const nn_stage *st, const float *dU, float *grad)
{
	int			C = st->c_in,
				CO = st->c_out;
	size_t		xs = (size_t) CO * C;

	for (int co = 0; co < CO; co++)
		for (int c = 0; c < C; c++)
		{
			const float *src = dU + (size_t) co * C + c;
			float	   *g = grad + (size_t) co * 9 * C + c;
			float		t[4][3];

			/* columns: dU G (4 x 3) */
			for (int a = 0; a < 4; a++)
			{
				float		y0 = src[(a * 4 + 0) * xs],
							y1 = src[(a * 4 + 1) * xs],
							y2 = src[(a * 4 + 2) * xs],
							y3 = src[(a * 4 + 3) * xs];

				t[a][0] = y0 + 0.5f * (y1 + y2);
				t[a][1] = 0.5f * (y1 - y2);
				t[a][2] = 0.5f * (y1 + y2) + y3;
			}
			/* rows: G^T (dU G) */
			for (int j = 0; j < 3; j++)
			{
				g[(0 * 3 + j) * C] += t[0][j] + 0.5f * (t[1][j] + t[2][j]);
				g[(1 * 3 + j) * C] += 0.5f * (t[1][j] - t[2][j]);
				g[(2 * 3 + j) * C] += 0.5f * (t[1][j] + t[2][j]) + t[3][j];
			}
		}
}

/* Copy the 4 x 4 x C patch of tile (ty, tx) of one image into p ([i][j][c]), zeros outside. */
static void
gather_patch(const nn_stage *st, const nn_layout *lay, const float *img, int ty, int tx, float *restrict p)
{
	int			C = st->c_in;

	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++, p += C)
		{
			int			y = 2 * ty - 1 + i,
						x = 2 * tx - 1 + j;
			const float *src;

			if (y < 0 || y >= st->h_in || x < 0 || x >= st->w_in)
			{
				memset(p, 0, sizeof(float) * C);
				continue;
			}
			src = img + (size_t) y * lay->sy + (size_t) x * lay->sx;
			if (lay->sc == 1)
				memcpy(p, src, sizeof(float) * C);
			else
				for (int c = 0; c < C; c++)
					p[c] = src[c * lay->sc];
		}
}

/* V = B^T d B of one patch p ([i][j][c]) into the 16 rows at v (stride xs between positions). */
static void
input_tile(const float *restrict p, int C, float *restrict v, size_t xs)
{
	for (int c = 0; c < C; c++)
	{
		float		t[4][4];

		/* columns: B^T d */
		for (int j = 0; j < 4; j++)
		{
			float		d0 = p[(0 * 4 + j) * C + c],
						d1 = p[(1 * 4 + j) * C + c],
						d2 = p[(2 * 4 + j) * C + c],
						d3 = p[(3 * 4 + j) * C + c];

			t[0][j] = d0 - d2;
			t[1][j] = d1 + d2;
			t[2][j] = d2 - d1;
			t[3][j] = d1 - d3;
		}
		/* rows: (B^T d) B */
		for (int a = 0; a < 4; a++)
		{
			v[(a * 4 + 0) * xs + c] = t[a][0] - t[a][2];
			v[(a * 4 + 1) * xs + c] = t[a][1] + t[a][2];
			v[(a * 4 + 2) * xs + c] = t[a][2] - t[a][1];
			v[(a * 4 + 3) * xs + c] = t[a][1] - t[a][3];
		}
	}
}

/* One tile of nn_wino_input: its patch, then B^T d B. */
static void
input_walk(const tile_walk *w, float *image, int ty, int tx, size_t t)
{
	gather_patch(w->st, w->lay, image, ty, tx, w->patch);
	input_tile(w->patch, w->st->c_in, w->tiles + t * w->st->c_in, w->xs);
}

/*
 * V for `rows` images of img (layout lay): V[xi][tile][c]; patch is scratch
 * of 16 x c_in floats.
 */
void
nn_wino_input(const nn_stage *st, const nn_layout *lay, const float *img, size_t img_size, int rows,
			  float *V, float *patch)
{
	size_t		T = (size_t) rows * nn_wino_tiles(st);
	tile_walk	w = {st, lay, (float *) img, img_size, V, T * st->c_in, patch};	/* img only read */

	for_tiles(&w, rows, input_walk);
}

/* d = B dV B^T of one tile's 16 rows at dv into the patch p ([i][j][c]). */
static void
input_tile_grad(const float *restrict dv, size_t xs, int C, float *restrict p)
{
	for (int c = 0; c < C; c++)
	{
		float		t[4][4];

		/* rows: dV B^T */
		for (int a = 0; a < 4; a++)
		{
			float		y0 = dv[(a * 4 + 0) * xs + c],
						y1 = dv[(a * 4 + 1) * xs + c],
						y2 = dv[(a * 4 + 2) * xs + c],
						y3 = dv[(a * 4 + 3) * xs + c];

			t[a][0] = y0;
			t[a][1] = y1 - y2 + y3;
			t[a][2] = y1 + y2 - y0;
			t[a][3] = -y3;
		}
		/* columns: B (dV B^T) */
		for (int j = 0; j < 4; j++)
		{
			p[(0 * 4 + j) * C + c] = t[0][j];
			p[(1 * 4 + j) * C + c] = t[1][j] - t[2][j] + t[3][j];
			p[(2 * 4 + j) * C + c] = t[1][j] + t[2][j] - t[0][j];
			p[(3 * 4 + j) * C + c] = -t[3][j];
		}
	}
}

/* Add the patch p of tile (ty, tx) onto one image's gradient gin, inside the image only. */
static void
scatter_patch(const nn_stage *st, const nn_layout *lay, float *gin, int ty, int tx, const float *restrict p)
{
	int			C = st->c_in;

	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++, p += C)
		{
			int			y = 2 * ty - 1 + i,
						x = 2 * tx - 1 + j;
			float	   *restrict dst;

			if (y < 0 || y >= st->h_in || x < 0 || x >= st->w_in)
				continue;
			dst = gin + (size_t) y * lay->sy + (size_t) x * lay->sx;
			for (int c = 0; c < C; c++)
				dst[c * lay->sc] += p[c];
		}
}

/* One tile of nn_wino_input_grad: B dV B^T, added onto the image's gradient. */
static void
input_grad_walk(const tile_walk *w, float *image, int ty, int tx, size_t t)
{
	input_tile_grad(w->tiles + t * w->st->c_in, w->xs, w->st->c_in, w->patch);
	scatter_patch(w->st, w->lay, image, ty, tx, w->patch);
}

/*
 * The input gradient of `rows` images from dV: each tile's B dV B^T added
 * onto gin (zeroed by the caller), tiles in order; patch is scratch.
 */
void
nn_wino_input_grad(const nn_stage *st, const nn_layout *lay, const float *dV, int rows,
				   float *gin, size_t img_size, float *patch)
{
	size_t		T = (size_t) rows * nn_wino_tiles(st);
	tile_walk	w = {st, lay, gin, img_size, (float *) dV, T * st->c_in, patch};	/* dV only read */

	for_tiles(&w, rows, input_grad_walk);
}

/* Y = A^T M A of one tile into its 2 x 2 outputs at o (those inside the image). */
static void
output_walk(const tile_walk *w, float *image, int ty, int tx, size_t t)
{
	int			CO = w->st->c_out,
				W = w->st->w_out,
				two_y = 2 * ty + 1 < w->st->h_out,
				two_x = 2 * tx + 1 < W;
	size_t		xs = w->xs;
	const float *restrict m = w->tiles + t * CO;
	float	   *restrict o = image + ((size_t) (2 * ty) * W + 2 * tx) * CO;

	for (int c = 0; c < CO; c++)
	{
		float		r[4][2];

		/* rows: M A (4 x 2) */
		for (int a = 0; a < 4; a++)
		{
			r[a][0] = m[(a * 4 + 0) * xs + c] + m[(a * 4 + 1) * xs + c] + m[(a * 4 + 2) * xs + c];
			r[a][1] = m[(a * 4 + 1) * xs + c] - m[(a * 4 + 2) * xs + c] - m[(a * 4 + 3) * xs + c];
		}
		/* columns: A^T (M A) */
		o[c] = r[0][0] + r[1][0] + r[2][0];
		if (two_x)
			o[CO + c] = r[0][1] + r[1][1] + r[2][1];
		if (two_y)
			o[(size_t) W * CO + c] = r[1][0] - r[2][0] - r[3][0];
		if (two_y && two_x)
			o[(size_t) (W + 1) * CO + c] = r[1][1] - r[2][1] - r[3][1];
	}
}

/* Y = A^T M A of every tile into out (HWC, `rows` images), outputs outside the image dropped. */
void
nn_wino_output(const nn_stage *st, const float *M, int rows, float *out)
{
	size_t		T = (size_t) rows * nn_wino_tiles(st);
	tile_walk	w = {st, NULL, out, (size_t) st->h_out * st->w_out * st->c_out, (float *) M, T * st->c_out, NULL};

	for_tiles(&w, rows, output_walk);	/* M only read */
}

/* dM = A dY A^T of one tile from its 2 x 2 outputs' gradient (zeros outside the image). */
static void
output_grad_walk(const tile_walk *w, float *image, int ty, int tx, size_t t)
{
	int			CO = w->st->c_out,
				W = w->st->w_out,
				two_y = 2 * ty + 1 < w->st->h_out,
				two_x = 2 * tx + 1 < W;
	size_t		xs = w->xs;
	const float *restrict o = image + ((size_t) (2 * ty) * W + 2 * tx) * CO;
	float	   *restrict m = w->tiles + t * CO;

	for (int c = 0; c < CO; c++)
	{
		float		y00 = o[c],
					y01 = two_x ? o[CO + c] : 0.0f,
					y10 = two_y ? o[(size_t) W * CO + c] : 0.0f,
					y11 = two_y && two_x ? o[(size_t) (W + 1) * CO + c] : 0.0f;
		float		r[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {-y10, -y11}};	/* A dY */

		/* columns: (A dY) A^T */
		for (int a = 0; a < 4; a++)
		{
			m[(a * 4 + 0) * xs + c] = r[a][0];
			m[(a * 4 + 1) * xs + c] = r[a][0] + r[a][1];
			m[(a * 4 + 2) * xs + c] = r[a][0] - r[a][1];
			m[(a * 4 + 3) * xs + c] = -r[a][1];
		}
	}
}

/* dM = A dY A^T of every tile from g (HWC, `rows` images), zeros for outputs outside the image. */
void
nn_wino_output_grad(const nn_stage *st, const float *g, int rows, float *dM)
{
	size_t		T = (size_t) rows * nn_wino_tiles(st);
	tile_walk	w = {st, NULL, (float *) g, (size_t) st->h_out * st->w_out * st->c_out, dM, T * st->c_out, NULL};

	for_tiles(&w, rows, output_grad_walk);	/* g only read */
}
