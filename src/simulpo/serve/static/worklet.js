// Microphone samples -> int16 PCM frames of about 100 ms, posted to the page.
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frame = Math.round(sampleRate / 10);
    this.buffer = new Int16Array(this.frame);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const x = Math.max(-1, Math.min(1, channel[i]));
        this.buffer[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(x * 32768)));
        if (this.filled === this.frame) {
          this.port.postMessage(this.buffer.buffer, [this.buffer.buffer]);
          this.buffer = new Int16Array(this.frame);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-capture", PcmCapture);
