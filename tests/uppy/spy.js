// Records what the README's recipe asks signpost, and what the confirmations answer.
export const sent = []
export const confirmed = []
export const failures = []

const realFetch = window.fetch.bind(window)
window.fetch = async (input, init) => {
  const path = new URL(String(input), location.href).pathname
  const body = init && typeof init.body === 'string' ? JSON.parse(init.body) : null
  const resp = await realFetch(input, init)
  if (path === '/api/sign-request' && body) {
    sent.push({ method: body.method, uploadId: body.uploadId || null, partNumber: body.partNumber || null,
      filename: body.filename || null, status: resp.status })
  }
  if (path === '/api/uploads/confirm') {
    const answer = await resp.clone().json()
    if (resp.ok) confirmed.push(answer)
    else failures.push(`confirm ${resp.status}: ${JSON.stringify(answer)}`)
  }
  return resp
}
