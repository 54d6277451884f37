/* Bare-metal start-up for the MPS2 boards QEMU emulates (mps2-an385 Cortex-M3, mps2-an386 Cortex-M4F,
 * mps2-an500 Cortex-M7): the vector table, .data copied from flash, .bss zeroed, semihosting opened,
 * main() run and its return value handed to the host as QEMU's exit status. A fault exits too (status
 * 3), so a program that goes wrong never hangs the emulator. Also the board's instruction counter. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst;
#if defined(__ARM_FP)
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10 and CP11 full access for the FPU */
#endif
  for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  initialise_monitor_handles();
  exit(main());
}

void Fault_Handler(void) { exit(3); }

/* The CMSDK timer 0 at 0x40000000, counting down from 0xffffffff at the board's 25 MHz. Under
 * `qemu-system-arm -icount shift=0` one instruction takes 1 ns of virtual time, so one tick is 40
 * instructions: the count is exact to 40 instructions per reading, and the same on every host. */
#define TIMER ((volatile uint32_t *)0x40000000)
#define NS_PER_TICK 40u

unsigned long board_instructions(void) {
  static int started;
  if (!started) {
    TIMER[2] = 0xffffffffu; /* RELOAD */
    TIMER[1] = 0xffffffffu; /* VALUE */
    TIMER[0] = 1u;          /* CTRL: enable */
    started = 1;
  }
  return (unsigned long)(0xffffffffu - TIMER[1]) * NS_PER_TICK;
}

/* Peak stack of a call: paint `bytes` below the stack pointer (nothing lives there: no interrupt is
 * enabled), make the call, then find the deepest byte it overwrote. */
#define PAINT 0xa5u
static uint8_t *painted_from, *painted_to;

static uint8_t *stack_pointer(void) {
  uint8_t *sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

void board_stack_paint(unsigned bytes) {
  volatile uint8_t *p; /* volatile: a loop the compiler turned into a memset call would paint that call's frame */
  painted_to = stack_pointer();
  painted_from = painted_to - bytes;
  for (p = painted_from; p < painted_to; ++p) *p = PAINT;
}

unsigned board_stack_used(void) {
  const uint8_t *p = painted_from;
  while (p < painted_to && *p == PAINT) ++p;
  return (unsigned)(painted_to - p);
}
