/* The demo program around a generated library: images.bin in, outputs.bin out.
 *
 *     ./classify_images            # in a folder holding images.bin: N x 784 bytes, MNIST pixels 0-255
 *
 * Writes outputs.bin (N x 10 int8: each image's quantised probabilities, in order) and prints one
 * line with N. The same file runs on a host (cc) and on a Cortex-M in QEMU, where the C library's
 * fopen/fread/fwrite reach the host's files through semihosting; a board build defines
 * NN_COUNTER to a function returning a running instruction or cycle count, and the line adds
 * the count per image.
 */
#include <stdio.h>

#include "mnist_model.h"

#ifdef NN_COUNTER
unsigned long NN_COUNTER(void);
#endif

int main(void) {
  static uint8_t pixels[MNIST_INPUTS];
  int8_t out[MNIST_CLASSES];
  unsigned long n = 0;
#ifdef NN_COUNTER
  unsigned long counted = 0, start;
#endif
  FILE *in = fopen("images.bin", "rb"), *outputs = fopen("outputs.bin", "wb");
  if (!in || !outputs) {
    printf("error: cannot open images.bin (to read) and outputs.bin (to write) in this folder\n");
    return 2;
  }
  while (fread(pixels, 1, sizeof pixels, in) == sizeof pixels) {
#ifdef NN_COUNTER
    start = NN_COUNTER();
#endif
    mnist_classify(pixels, out);
#ifdef NN_COUNTER
    counted += NN_COUNTER() - start;
#endif
    if (fwrite(out, 1, sizeof out, outputs) != sizeof out) {
      printf("error: cannot write outputs.bin\n");
      return 2;
    }
    ++n;
  }
  fclose(in);
  fclose(outputs);
#ifdef NN_COUNTER
  printf("classified %lu images, %lu instructions per image\n", n, n ? counted / n : 0);
#else
  printf("classified %lu images\n", n);
#endif
  return 0;
}
