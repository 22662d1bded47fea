-- Argo CD health of a modelhub.dev ModelVersion, from the conditions the modelhub operator writes.
-- Revoked, or refused by signature verification: Degraded. Waiting for the operator, a signature bundle,
-- approval or the rollout: Progressing. Serving, or verified and approved but not promoted: Healthy.
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

-- SignatureVerified=False reasons that mean "not yet": the bundle or the Model may still appear.
local waiting_for_signature = { BundleNotFound = true, BundleUnreachable = true, ModelNotFound = true }
-- Ready=False reasons of a version that is on its way to serving.
local rolling_out = { Progressing = true, NotPromoted = true, ScaledToZero = true }

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to verify the signature"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local revoked = condition("Revoked")
if revoked ~= nil and revoked.status == "True" then
  hs.status = "Degraded"
  hs.message = text(revoked, "Revoked")
  return hs
end

local verified = condition("SignatureVerified")
if verified == nil or verified.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = text(verified, "Waiting for signature verification")
  return hs
end
if verified.status ~= "True" then
  if waiting_for_signature[verified.reason] then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = tostring(verified.reason) .. ": " .. text(verified, "signature not verified")
  return hs
end

local approved = condition("Approved")
if approved == nil or approved.status ~= "True" then
  hs.status = "Progressing"
  hs.message = text(approved, "Waiting for approval")
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Serving")
  return hs
end
if ready ~= nil and (ready.reason == "NotPromoted" or ready.reason == "ScaledToZero") then
  -- verified and approved, and deliberately not serving: nothing to wait for
  hs.status = "Healthy"
  hs.message = text(ready, ready.reason)
  return hs
end
if ready == nil or ready.status == "Unknown" or rolling_out[ready.reason] then
  hs.status = "Progressing"
  hs.message = text(ready, "Waiting for the rollout")
  return hs
end
-- Unschedulable, InvalidServing and any other reason the operator gives for not serving
hs.status = "Degraded"
hs.message = tostring(ready.reason) .. ": " .. text(ready, "not ready")
return hs
