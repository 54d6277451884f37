/* The demo program around a generated library: images.bin in, outputs.bin out.
 *
 *     ./classify_images            # in a folder holding images.bin: N x 784 bytes, MNIST pixels 0-255
 *
 * Writes outputs.bin (N x 10 int8: each image's quantised probabilities, in order) and prints one
 * line with N. The same file runs on a host (cc) and on a Cortex-M in QEMU, where the C library's
 * fopen/fread/fwrite reach the host's files through semihosting. A board build defines
 * NN_COUNTER to a function returning a running instruction or cycle count, and NN_STACK to give
 * board_stack_paint / board_stack_used (cortex_m/startup.c): the line then adds the count per
 * image and the peak stack of one classification.
 */
#include <stdio.h>

#include "mnist_model.h"

#ifdef NN_COUNTER
unsigned long NN_COUNTER(void);
#endif
#ifdef NN_STACK
void board_stack_paint(unsigned bytes);
unsigned board_stack_used(void);
#endif

int main(void) {
  static uint8_t pixels[MNIST_INPUTS];
  int8_t out[MNIST_CLASSES];
  unsigned long n = 0;
#ifdef NN_STACK
  unsigned stack = 0;
#endif
#ifdef NN_COUNTER
  unsigned long long counted = 0; /* 64 bits: a long run counts more than 2^32 instructions */
  unsigned long start;
#endif
  FILE *in = fopen("images.bin", "rb"), *outputs = fopen("outputs.bin", "wb");
  if (!in || !outputs) {
    printf("error: cannot open images.bin (to read) and outputs.bin (to write) in this folder\n");
    return 2;
  }
  while (fread(pixels, 1, sizeof pixels, in) == sizeof pixels) {
#ifdef NN_STACK
    if (n == 0) board_stack_paint(NN_STACK);
#endif
#ifdef NN_COUNTER
    start = NN_COUNTER();
#endif
    mnist_classify(pixels, out);
#ifdef NN_STACK
    if (n == 0) stack = board_stack_used();
#endif
#ifdef NN_COUNTER
    counted += (unsigned long)(NN_COUNTER() - start); /* modulo 2^32: the difference survives a wrap */
#endif
    if (fwrite(out, 1, sizeof out, outputs) != sizeof out) {
      printf("error: cannot write outputs.bin\n");
      return 2;
    }
    ++n;
  }
  fclose(in);
  fclose(outputs);
  printf("classified %lu images", n);
#ifdef NN_COUNTER
  printf(", %lu instructions per image", n ? (unsigned long)(counted / n) : 0ul);
#endif
#ifdef NN_STACK
  printf(", %u bytes of stack", stack);
#endif
  printf("\n");
  return 0;
}
