// The browser test's page script (tests/api/uppy.rs): the README's Uppy recipe, bundled with
// a spy on its requests and a way to hand it images drawn in the page.
//
// `spy.js` comes first so that it wraps `fetch` before the recipe runs.
import { sent, confirmed, failures } from './spy.js'
import { uppy } from './recipe.js'

uppy.on('upload-error', (file, error) => {
  failures.push(`${file.name}: ${error && error.message}`)
})

// A camera-like picture: a gradient under per-pixel noise, so that it does not compress
// below camera sizes.
function draw(width, height, type, quality) {
  const canvas = document.createElement('canvas')
  canvas.width = width
  canvas.height = height
  const ctx = canvas.getContext('2d')
  const img = ctx.createImageData(width, height)
  let seed = (width * 31 + height) | 1
  for (let i = 0; i < img.data.length; i += 4) {
    // xorshift32: noise that deflate cannot squeeze.
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    const p = i / 4
    img.data[i] = ((p % width) + (seed & 0x3f)) & 0xff
    img.data[i + 1] = ((p / width) + ((seed >>> 8) & 0x3f)) & 0xff
    img.data[i + 2] = (seed >>> 16) & 0xff
    img.data[i + 3] = 255
  }
  ctx.putImageData(img, 0, 0)
  return new Promise((resolve) => canvas.toBlob(resolve, type, quality))
}

window.harness = {
  sent,
  confirmed,
  failures,
  sizes: {},
  ready: false,
  async start() {
    try {
      const files = [
        ['Été à Paris.jpg', await draw(1200, 900, 'image/jpeg', 0.92)],
        ['scan 2.png', await draw(300, 200, 'image/png')],
        ['panorama.png', await draw(1800, 1400, 'image/png')],
      ]
      for (const [name, blob] of files) {
        this.sizes[name] = blob.size
        uppy.addFile({ name, type: blob.type, data: blob, source: 'test' })
      }
      this.ready = true
      await uppy.upload()
    } catch (e) {
      failures.push(`start: ${e && e.message}`)
    }
  },
}
